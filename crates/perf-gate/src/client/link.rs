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
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWriteExt as _, ReadBuf};
use tokio_rustls::client::TlsStream;

use super::timed_socket::TimedSocket;

/// A connection's byte stream.
pub(crate) enum Link {
    /// Plain `http`.
    Plain(TimedSocket),
    /// A TLS session (boxed: its state is some kilobytes, a plain link's a few words).
    Tls {
        stream: Box<TlsStream<TimedSocket>>,
        /// The session ended without `close_notify` (a body that runs to the close may be
        /// cut short).
        cut: bool,
    },
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

    /// Runs the handshake on `socket`. A refused certificate is an error whose message is
    /// rustls's own ("invalid peer certificate: UnknownIssuer").
    pub async fn handshake(&self, socket: TimedSocket) -> io::Result<Link> {
        let tls = self.connector.connect(self.name.clone(), socket).await?;
        Ok(Link::Tls {
            stream: Box::new(tls),
            cut: false,
        })
    }
}

impl Link {
    /// Reads into `buf`: how many bytes (0 at the end of the stream) and when the newest of them
    /// arrived, if the kernel said. Under TLS a read takes the decrypted bytes waiting, and
    /// reads the socket only while none wait (until a record is complete): the bytes are dated
    /// by the read that completed their record, never by a later one. A TLS peer that closes without `close_notify` ends the stream as a
    /// plain close would, and [`Link::cut`] says so (HTTP's framing says whether the answer
    /// was whole, as on plain `http`).
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<(usize, Option<Instant>)> {
        match self {
            Link::Plain(s) => s.read(buf).await,
            Link::Tls { stream, cut } => {
                let n = match stream.fill_buf().await {
                    Ok(data) => {
                        let n = data.len().min(buf.len());
                        buf[..n].copy_from_slice(&data[..n]);
                        n
                    }
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        *cut = true;
                        return Ok((0, None));
                    }
                    Err(e) => return Err(e),
                };
                stream.consume(n);
                Ok((n, stream.get_ref().0.last_arrival()))
            }
        }
    }

    /// Whether the stream ended without the TLS `close_notify` that says the server meant to
    /// end it (never, on plain `http`).
    pub fn cut(&self) -> bool {
        matches!(self, Link::Tls { cut: true, .. })
    }

    /// Writes all of `bytes` (under TLS, as one or more records sent at once).
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Link::Plain(s) => TimedSocket::write_all(s, bytes).await,
            Link::Tls { stream, .. } => {
                stream.write_all(bytes).await?;
                stream.flush().await
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
            Link::Tls { stream, .. } => {
                // polled once without a task to wake: `Pending` means nothing to read
                let mut cx = Context::from_waker(Waker::noop());
                let mut buf = ReadBuf::new(&mut probe);
                matches!(
                    std::pin::Pin::new(&mut **stream).poll_read(&mut cx, &mut buf),
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
        let data_reads = |link: &Link| match link {
            Link::Tls { stream, .. } => stream.get_ref().0.reads_with_data(),
            Link::Plain(_) => panic!("not a TLS link"),
        };
        // stamping is turned on for the system in a deferred work item; the session tickets
        // arrive meanwhile, and this thread's reactor sees them
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before = data_reads(&link);
        assert!(
            link.looks_open(),
            "a session ticket made the session look closed"
        );
        assert!(
            data_reads(&link) > before,
            "the probe read no session ticket"
        );

        let written = Instant::now();
        server.write_all(b"data: token\n\n").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let mut buf = [0u8; 64];
        let (n, at) = link.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"data: token\n\n");
        super::super::timed_socket::assert_dated_at_the_write(
            at,
            written,
            Duration::from_millis(200),
        );

        // both ways, then the server's close ends the stream and the session looks closed
        link.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        std::io::Read::read_exact(&mut server, &mut got).unwrap();
        assert_eq!(&got, b"ping");
        drop(server);
        tokio::time::timeout(Duration::from_secs(5), async {
            while link.looks_open() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the closed session looks closed");
    }
}
