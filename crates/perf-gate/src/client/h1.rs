//! A small HTTP/1.1 client for the load's streaming requests over `http` or `https`: the answer
//! is read straight from the socket (or its TLS session) in the request's own task.
//!
//! reqwest (hyper) reads every connection in a task of its own and hands the body over a
//! channel: two wake-ups and a task switch per network read. At 1,024 streams that hop cost
//! ~0.13 ms of client CPU per 128-token request, a quarter of the whole (measured by
//! `examples/raw_sse_ceiling`); at zero delay it capped the load. Here the request's task
//! writes the request, parses the head (`httparse`) and decodes the body (`Content-Length`,
//! chunked, or to the close) from one buffer per connection, with no copy and no channel.
//!
//! What a load needs of a client and no more: keep-alive connections in a pool per client
//! (sized to the concurrency); the server's name resolved once for a burst of new connections
//! (reused for [`RESOLVED_FOR`], forgotten when no address takes a connection; connects start
//! at each address in turn; a failed lookup fails the connects that waited for it, each with
//! its cause); a pooled connection found closed is dropped at check-out; and a
//! request is sent again on a new connection only when its kept connection proved closed
//! before the server could act on it (as hyper and Go's client do). `https` runs rustls over
//! the same timed socket ([`super::link`]), trusting what reqwest trusts; its handshake is part
//! of opening a connection (bounded by the connect timeout, and done before the load by the
//! preconnect). A proxy from the environment stays with reqwest.

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::link::{Link, TlsOrigin};
use super::timed_socket::TimedSocket;

/// Size of a connection's read buffer; a response head may grow it to [`MAX_HEAD`].
const BUFFER: usize = 8 * 1024;
/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Most headers in a response head.
const MAX_HEADERS: usize = 64;
/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4 * 1024;
/// How long the server's resolved addresses serve new connections before the name is looked up
/// again (a failed connect forgets them at once).
const RESOLVED_FOR: Duration = Duration::from_secs(5);

/// How long a connection may idle in the pool and still be used. vLLM's server (uvicorn)
/// closes a connection idle for 5 s (`timeout_keep_alive`): a request sent on one near that
/// moment meets the close and fails (it cannot be sent again: the server may have acted on
/// it), so the pool lets connections go a second before.
pub(crate) const KEEP_IDLE_FOR: Duration = Duration::from_secs(4);

/// Where a request failed, which decides its [`super::ErrorKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// No connection could be opened.
    Connect,
    /// Opening the connection took longer than the connect timeout.
    ConnectTimeout,
    /// Sending the request or reading the answer's head.
    Head,
    /// Reading the answer's body.
    Body,
}

/// A failed request: where, and what happened.
#[derive(Debug)]
pub(crate) struct H1Error {
    /// Where it failed.
    pub stage: Stage,
    /// What happened (never holds the request's headers).
    pub message: String,
}

impl H1Error {
    fn new(stage: Stage, message: impl Into<String>) -> Self {
        H1Error {
            stage,
            message: message.into(),
        }
    }

    fn io(stage: Stage, what: &str, e: &io::Error) -> Self {
        H1Error::new(stage, format!("{what}: {e}"))
    }
}

/// Where connections go: the server's host and port, and the `Host` header naming them.
#[derive(Debug)]
struct Origin {
    /// Host name or address literal (without brackets).
    host: String,
    port: u16,
    /// `host[:port]` as the `Host` header carries it.
    authority: String,
}

/// A connection and the bytes read from it but not consumed yet.
struct Conn {
    io: Link,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// When the newest buffered bytes arrived, if the kernel said.
    arrived: Option<Instant>,
    /// Came from the pool (a request on it may meet a close the server made while it idled).
    reused: bool,
}

impl Conn {
    fn new(io: Link) -> Self {
        Conn {
            io,
            buf: vec![0; BUFFER],
            pos: 0,
            end: 0,
            arrived: None,
            reused: false,
        }
    }

    fn unread(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// Reads more bytes after the unconsumed ones; `Ok(0)` at the end of the stream. Unconsumed
    /// bytes move to the front once they sit past the buffer's middle; a buffer full of them (a
    /// head not complete yet) grows up to [`MAX_HEAD`].
    async fn fill(&mut self) -> io::Result<usize> {
        if self.pos == self.end {
            (self.pos, self.end) = (0, 0);
        } else if self.pos > 0 && (self.end == self.buf.len() || self.pos >= self.buf.len() / 2) {
            self.buf.copy_within(self.pos..self.end, 0);
            (self.end, self.pos) = (self.end - self.pos, 0);
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= MAX_HEAD {
                return Err(io::Error::other(format!(
                    "a response line or head is longer than {} KiB",
                    MAX_HEAD / 1024
                )));
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let (n, arrived) = self.io.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        self.arrived = arrived;
        Ok(n)
    }

    /// Whether an idle connection still looks usable: the server has not closed it or sent
    /// anything unasked. Costs no system call unless the reactor saw the socket readable.
    fn looks_open(&mut self) -> bool {
        self.io.looks_open()
    }
}

/// How an answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes are left.
    Length(u64),
    /// Chunked, in this state.
    Chunked(Chunked),
    /// Everything up to the server's close.
    Close,
    /// Read to its end.
    Done,
}

/// Where the chunked decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, with this many bytes left.
    Data(u64),
    /// After a chunk's data, before its line end.
    DataEnd,
    /// After the last (empty) chunk: trailer lines up to an empty one.
    Trailers,
}

/// What one step of decoding the buffered bytes gave.
enum Step {
    /// Body bytes at this range of the buffer.
    Data(Range<usize>),
    /// The body ended.
    End,
    /// More bytes must be read.
    More,
}

/// Pooled HTTP/1.1 connections to one server.
#[derive(Debug)]
pub(crate) struct H1Client {
    origin: Origin,
    /// `https`: how its sessions open.
    tls: Option<TlsOrigin>,
    idle: Mutex<Vec<PooledConn>>,
    max_idle: usize,
    /// How long a pooled connection may idle and still be used ([`KEEP_IDLE_FOR`]).
    keep_idle_for: Duration,
    connect_timeout: Duration,
    /// The server's addresses as last resolved: the preconnect's burst of connections (one
    /// per stream) makes one lookup, not one each (each a `getaddrinfo` on a blocking thread,
    /// and in Kubernetes several queries to the cluster's DNS: A and AAAA, per search domain).
    resolved: Mutex<Option<Resolved>>,
    /// One lookup at a time: the connects of a burst wait for the first one's answer.
    lookup: tokio::sync::Mutex<()>,
    /// Connects started: each tries the addresses from the next one on, so the connections to
    /// a name with several (a headless service's pods, round-robin DNS) spread over them, as
    /// the shuffled answers of a lookup per connection spread them.
    turn: std::sync::atomic::AtomicUsize,
    /// Lookups made.
    #[cfg(test)]
    lookups: std::sync::atomic::AtomicUsize,
    /// Lookups take this long and then fail with this kind of error, instead of asking the
    /// system's resolver (a DNS outage, on demand).
    #[cfg(test)]
    failing_lookup: Option<(Duration, io::ErrorKind)>,
}

/// The last lookup of the server's name: when it answered, and its answer.
#[derive(Debug)]
struct Resolved {
    at: Instant,
    answer: Result<std::sync::Arc<[SocketAddr]>, LookupFailure>,
}

/// A lookup that failed, kept for the connects that waited for it.
#[derive(Debug, Clone)]
struct LookupFailure {
    kind: io::ErrorKind,
    message: String,
}

/// An idle connection and when it went idle (its `Debug` shows nothing: it holds only a
/// socket and a buffer).
struct PooledConn(Conn, Instant);

impl std::fmt::Debug for PooledConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PooledConn")
    }
}

/// One request: its method, target (path and query), extra header lines and body.
pub(crate) struct Request<'a> {
    /// `POST` or `GET`.
    pub method: &'static str,
    /// The request target, starting with `/`.
    pub target: &'a str,
    /// Header names and values besides `Host` and `Content-Length`; values are valid header
    /// values (a `HeaderValue`'s bytes).
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The body (`Content-Length` is sent when it is not empty or the method is `POST`).
    pub body: &'a [u8],
}

impl H1Client {
    /// A client for the server of `url` keeping at most `max_idle` idle connections, speaking
    /// TLS under `tls` to an `https` one; `None` when the URL is neither `http` nor `https`
    /// with a `tls` configuration (or has no host).
    pub fn new(
        url: &url::Url,
        max_idle: usize,
        connect_timeout: Duration,
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    ) -> Option<Self> {
        let tls_config = match (url.scheme(), tls) {
            ("http", _) => None,
            ("https", Some(config)) => Some(config),
            _ => return None,
        };
        let (host, authority) = match url.host()? {
            url::Host::Domain(d) => (d.to_string(), d.to_string()),
            url::Host::Ipv4(a) => (a.to_string(), a.to_string()),
            url::Host::Ipv6(a) => (a.to_string(), format!("[{a}]")),
        };
        let port = url.port_or_known_default()?;
        let tls = match tls_config {
            Some(config) => Some(TlsOrigin::new(&host, config)?),
            None => None,
        };
        let authority = match url.port() {
            Some(p) => format!("{authority}:{p}"),
            None => authority,
        };
        Some(H1Client {
            tls,
            origin: Origin {
                host,
                port,
                authority,
            },
            idle: Mutex::new(Vec::new()),
            resolved: Mutex::new(None),
            lookup: tokio::sync::Mutex::new(()),
            turn: std::sync::atomic::AtomicUsize::new(0),
            #[cfg(test)]
            lookups: std::sync::atomic::AtomicUsize::new(0),
            #[cfg(test)]
            failing_lookup: None,
            max_idle,
            keep_idle_for: KEEP_IDLE_FOR,
            connect_timeout,
        })
    }

    /// Idle connections now in the pool.
    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.idle.lock().map_or(0, |v| v.len())
    }

    /// An idle connection that still looks open and has idled less than
    /// [`H1Client::keep_idle_for`], if the pool has one.
    fn checkout(&self) -> Option<Conn> {
        loop {
            let PooledConn(mut c, since) = self.idle.lock().ok()?.pop()?;
            if since.elapsed() >= self.keep_idle_for {
                continue; // the server may be closing it: a new one is safer
            }
            if c.looks_open() {
                return Some(c);
            }
        }
    }

    /// Puts a connection whose answer was read to its end back in the pool. A full pool first
    /// drops the idle connections the server closed (vLLM's uvicorn closes a connection idle
    /// for 5 s: a pause between steps leaves a pool of them), then its oldest: a newer
    /// connection is the likelier to be open.
    fn checkin(&self, mut conn: Conn) {
        if conn.pos != conn.end || self.max_idle == 0 {
            return; // bytes nobody asked for: the connection is out of step
        }
        conn.reused = true;
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        if idle.len() >= self.max_idle {
            idle.retain_mut(|PooledConn(c, since)| {
                since.elapsed() < self.keep_idle_for && c.looks_open()
            });
        }
        if idle.len() >= self.max_idle {
            idle.remove(0);
        }
        idle.push(PooledConn(conn, Instant::now()));
    }

    /// The answer a connect that asked at `asked` takes without a lookup of its own: the
    /// addresses resolved in the last [`RESOLVED_FOR`], or the failure of a lookup that ended
    /// after it asked (it waited for that one: a burst of connects during a DNS outage fails
    /// at once, each with the cause, instead of each retrying the lookup in turn).
    fn answer_since(&self, asked: Instant) -> Option<io::Result<std::sync::Arc<[SocketAddr]>>> {
        let cached = self.resolved.lock().ok()?;
        let r = cached.as_ref()?;
        match &r.answer {
            Ok(addrs) => (r.at.elapsed() < RESOLVED_FOR).then(|| Ok(addrs.clone())),
            Err(f) => (r.at >= asked).then(|| Err(io::Error::new(f.kind, f.message.clone()))),
        }
    }

    /// The server's addresses: those resolved in the last [`RESOLVED_FOR`], else looked up now
    /// (connections opened meanwhile wait for this lookup instead of making their own, and
    /// share its answer or its failure; each waits within its own connect timeout).
    async fn addresses(&self) -> io::Result<std::sync::Arc<[SocketAddr]>> {
        let asked = Instant::now();
        if let Some(answer) = self.answer_since(asked) {
            return answer;
        }
        let _one = self.lookup.lock().await;
        // the lookup this one waited for may have answered, or failed
        if let Some(answer) = self.answer_since(asked) {
            return answer;
        }
        let answer = self
            .look_up()
            .await
            .and_then(|addrs| match addrs.is_empty() {
                true => Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "the name has no address",
                )),
                false => Ok(addrs),
            });
        #[cfg(test)]
        self.lookups
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut cached) = self.resolved.lock() {
            *cached = Some(Resolved {
                at: Instant::now(),
                answer: match &answer {
                    Ok(addrs) => Ok(addrs.clone()),
                    Err(e) => Err(LookupFailure {
                        kind: e.kind(),
                        message: e.to_string(),
                    }),
                },
            });
        }
        answer
    }

    /// Asks the system's resolver for the server's addresses.
    async fn look_up(&self) -> io::Result<std::sync::Arc<[SocketAddr]>> {
        #[cfg(test)]
        if let Some((takes, kind)) = self.failing_lookup {
            tokio::time::sleep(takes).await;
            return Err(io::Error::new(kind, "no answer from the name server"));
        }
        let o = &self.origin;
        Ok(tokio::net::lookup_host((o.host.as_str(), o.port))
            .await?
            .collect())
    }

    /// Forgets the resolved addresses `tried` (none of them took a connection: the server may
    /// have moved), unless a newer lookup already replaced them.
    fn forget_addresses(&self, tried: &std::sync::Arc<[SocketAddr]>) {
        if let Ok(mut cached) = self.resolved.lock()
            && cached.as_ref().is_some_and(|r| {
                r.answer
                    .as_ref()
                    .is_ok_and(|a| std::sync::Arc::ptr_eq(a, tried))
            })
        {
            *cached = None;
        }
    }

    /// Opens a new connection (with `TCP_NODELAY`: a request goes out at once), and its TLS
    /// session for `https`; both within the connect timeout.
    async fn connect(&self) -> Result<Conn, H1Error> {
        let o = &self.origin;
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        // whether the time ran out while the name was still being looked up
        let resolved = std::sync::atomic::AtomicBool::new(false);
        let open = async {
            let addrs = self.addresses().await.map_err(|e| {
                H1Error::io(
                    Stage::Connect,
                    &format!("cannot resolve {}", o.authority),
                    &e,
                )
            })?;
            resolved.store(true, std::sync::atomic::Ordering::Relaxed);
            // each address left gets its share of the time left: one that never answers (an
            // unroutable IPv6 address) leaves time for the next
            let turn = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut last = None;
            for (i, addr) in rotated(&addrs, turn).enumerate() {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let share = left / u32::try_from(addrs.len() - i).unwrap_or(1);
                match tokio::time::timeout(share, TcpStream::connect(addr)).await {
                    Ok(Ok(s)) => return Ok(s),
                    Ok(Err(e)) => last = Some(e),
                    Err(_) => {
                        last = Some(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("no answer from {addr} within {share:?}"),
                        ))
                    }
                }
            }
            self.forget_addresses(&addrs);
            Err(match last {
                Some(e) if e.kind() == io::ErrorKind::TimedOut => H1Error::new(
                    Stage::ConnectTimeout,
                    format!(
                        "no connection to {} within {:?}",
                        o.authority, self.connect_timeout
                    ),
                ),
                // `addresses` answers at least one: `last` is set
                e => H1Error::io(
                    Stage::Connect,
                    &format!("error connecting to {}", o.authority),
                    &e.unwrap_or_else(|| io::ErrorKind::NotFound.into()),
                ),
            })
        };
        let io = tokio::time::timeout_at(deadline, open)
            .await
            .map_err(|_| {
                let what = match resolved.load(std::sync::atomic::Ordering::Relaxed) {
                    true => "no connection to",
                    false => "no address from the resolver for",
                };
                H1Error::new(
                    Stage::ConnectTimeout,
                    format!("{what} {} within {:?}", o.authority, self.connect_timeout),
                )
            })??;
        io.set_nodelay(true)
            .map_err(|e| H1Error::io(Stage::Connect, "cannot set TCP_NODELAY", &e))?;
        let io = TimedSocket::new(io)
            .map_err(|e| H1Error::io(Stage::Connect, "cannot register the connection", &e))?;
        let io = match &self.tls {
            None => Link::Plain(io),
            Some(tls) => tokio::time::timeout_at(deadline, tls.handshake(io))
                .await
                .map_err(|_| {
                    H1Error::new(
                        Stage::ConnectTimeout,
                        format!(
                            "no TLS session with {} within {:?}",
                            o.authority, self.connect_timeout
                        ),
                    )
                })?
                .map_err(|e| {
                    let mut failed = H1Error::io(
                        Stage::Connect,
                        &format!("TLS handshake with {} failed", o.authority),
                        &e,
                    );
                    if crate::transport::is_certificate_error(&e) {
                        failed.message =
                            format!("{} ({})", failed.message, crate::transport::VLLM.hint());
                    }
                    failed
                })?,
        };
        Ok(Conn::new(io))
    }

    /// The request's bytes: head and body in one buffer (one write, one packet).
    fn encode(&self, req: &Request<'_>) -> Vec<u8> {
        let headers: usize = req.headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
        let mut out = Vec::with_capacity(
            req.method.len()
                + req.target.len()
                + headers
                + self.origin.authority.len()
                + 64
                + req.body.len(),
        );
        out.extend_from_slice(req.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(req.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        out.extend_from_slice(self.origin.authority.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (name, value) in req.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        if !req.body.is_empty() || req.method == "POST" {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(req.body.len().to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(req.body);
        out
    }

    /// Sends `req` and reads the answer's head; `fresh` opens a new connection whatever the
    /// pool holds. A request is sent again, once, on a new connection only when its pooled
    /// connection proved closed before the server could have acted on it: writing it failed,
    /// or the answer was a `408` (a server timing out an idle connection says so, then
    /// closes); a `GET` also when the connection closed before an answer began (it changes
    /// nothing on the server). A `POST` written in full is never sent twice (as hyper and Go's
    /// client): the server may have acted on it, and a close after it is a failure.
    pub async fn send(&self, req: &Request<'_>, fresh: bool) -> Result<Response<'_>, H1Error> {
        let bytes = self.encode(req);
        let pooled = if fresh { None } else { self.checkout() };
        let first = match pooled {
            Some(c) => exchange(c, &bytes, req.method).await,
            None => exchange(self.connect().await?, &bytes, req.method).await,
        };
        let head = match first {
            Err(Exchange::Stale(_)) => {
                match exchange(self.connect().await?, &bytes, req.method).await {
                    Err(Exchange::Stale(e) | Exchange::Failed(e)) => return Err(e),
                    Ok(head) => head,
                }
            }
            Err(Exchange::Failed(e)) => return Err(e),
            Ok(head) => head,
        };
        Ok(Response::new(self, head))
    }
}

/// `addrs` from the one at `turn` (modulo their number) on, wrapping round: each in turn
/// first.
fn rotated(addrs: &[SocketAddr], turn: usize) -> impl Iterator<Item = &SocketAddr> {
    let start = turn % addrs.len().max(1);
    addrs[start..].iter().chain(&addrs[..start])
}

/// Why [`exchange`] did not get an answer's head.
enum Exchange {
    /// A reused connection proved closed before the server could act on the request: worth
    /// one more try on a new one.
    Stale(H1Error),
    Failed(H1Error),
}

/// An answer's head, and the connection its body follows on.
struct Head {
    conn: Conn,
    status: u16,
    framing: Framing,
    keep_alive: bool,
}

/// Writes `bytes` on `conn` and reads the answer's head (skipping `1xx` answers).
async fn exchange(mut conn: Conn, bytes: &[u8], method: &str) -> Result<Head, Exchange> {
    let head_request = method == "HEAD";
    // a GET or HEAD the server may have read changes nothing there: sent again, as Go does
    let idempotent = matches!(method, "GET" | "HEAD");
    if let Err(e) = conn.io.write_all(bytes).await {
        let e = H1Error::io(Stage::Head, "error sending the request", &e);
        return Err(if conn.reused {
            Exchange::Stale(e)
        } else {
            Exchange::Failed(e)
        });
    }
    let mut answered = false;
    loop {
        match parse_head(conn.unread(), head_request) {
            Ok(Some((len, status, framing, keep_alive))) => {
                conn.pos += len;
                if (100..200).contains(&status) {
                    answered = true;
                    continue; // an interim answer: the final one follows
                }
                if status == 408 && conn.reused && !answered {
                    return Err(Exchange::Stale(H1Error::new(
                        Stage::Head,
                        "the server closed a kept connection (HTTP 408)",
                    )));
                }
                return Ok(Head {
                    conn,
                    status,
                    framing,
                    keep_alive,
                });
            }
            Ok(None) => {}
            Err(message) => return Err(Exchange::Failed(H1Error::new(Stage::Head, message))),
        }
        let had = conn.end - conn.pos;
        match conn.fill().await {
            Ok(0) if had == 0 && !answered => {
                let e = H1Error::new(Stage::Head, "connection closed before an answer began");
                return Err(if conn.reused && idempotent {
                    Exchange::Stale(e)
                } else {
                    Exchange::Failed(e)
                });
            }
            Ok(0) => {
                return Err(Exchange::Failed(H1Error::new(
                    Stage::Head,
                    "connection closed in the middle of the answer's head",
                )));
            }
            Ok(_) => {}
            Err(e) => {
                return Err(Exchange::Failed(H1Error::io(
                    Stage::Head,
                    "error reading the answer",
                    &e,
                )));
            }
        }
    }
}

/// Parses a complete answer head at the start of `bytes`: its length, status, body framing and
/// whether the connection may carry another request. `Ok(None)`: not complete yet.
fn parse_head(
    bytes: &[u8],
    head_request: bool,
) -> Result<Option<(usize, u16, Framing, bool)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("invalid HTTP answer head: {e}")),
    };
    let status = resp.code.unwrap_or(0);
    let http11 = resp.version == Some(1);
    let (mut close, mut keep_alive_token) = (false, false);
    let (mut length, mut chunked, mut encoded) = (None::<u64>, false, false);
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            encoded = true;
            // chunked only when it is the last coding applied
            chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value.trim_ascii())
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| {
                    format!(
                        "invalid Content-Length {:?}",
                        String::from_utf8_lossy(h.value)
                    )
                })?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length headers".to_string());
            }
            length = Some(n);
        }
    }
    let no_body = head_request || (100..200).contains(&status) || status == 204 || status == 304;
    let framing = if no_body {
        Framing::Done
    } else if encoded {
        if chunked {
            Framing::Chunked(Chunked::Size)
        } else {
            Framing::Close
        }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    // a message framed both ways, or chunked under HTTP/1.0, may be a smuggling attempt or a
    // broken proxy: its connection is not trusted with another request (RFC 9112 §6.1, §6.3)
    let ambiguous = encoded && (length.is_some() || !http11);
    let keep_alive =
        framing != Framing::Close && !ambiguous && if http11 { !close } else { keep_alive_token };
    Ok(Some((len, status, framing, keep_alive)))
}

/// An answer whose head has been read; its body is read with [`Response::chunk`].
pub(crate) struct Response<'c> {
    client: &'c H1Client,
    conn: Conn,
    status: u16,
    framing: Framing,
    keep_alive: bool,
}

impl<'c> Response<'c> {
    fn new(client: &'c H1Client, head: Head) -> Self {
        Response {
            client,
            conn: head.conn,
            status: head.status,
            framing: head.framing,
            keep_alive: head.keep_alive,
        }
    }

    /// The answer's status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// When the bytes [`Response::chunk`] gave last arrived (the kernel's receive time of the
    /// newest bytes read), or `None` where the system gives no receive times.
    pub fn arrived(&self) -> Option<Instant> {
        self.conn.arrived
    }

    /// The next piece of the body as it arrived (`None` at its end). The bytes are the
    /// connection's buffer: valid until the next call.
    pub async fn chunk(&mut self) -> Result<Option<&[u8]>, H1Error> {
        loop {
            match self.step()? {
                Step::Data(r) => return Ok(Some(&self.conn.buf[r])),
                Step::End => return Ok(None),
                Step::More => {}
            }
            match self.conn.fill().await {
                // a TLS session cut without `close_notify` may have cut the body too
                Ok(0) if self.framing == Framing::Close && self.conn.io.cut() => {
                    return Err(H1Error::new(
                        Stage::Body,
                        "the TLS session ended without close_notify before the end of the body",
                    ));
                }
                Ok(0) if self.framing == Framing::Close => self.framing = Framing::Done,
                Ok(0) => {
                    return Err(H1Error::new(
                        Stage::Body,
                        "connection closed before the end of the body",
                    ));
                }
                Ok(_) => {}
                Err(e) => return Err(H1Error::io(Stage::Body, "error reading the body", &e)),
            }
        }
    }

    /// Decodes what is buffered as far as it goes.
    fn step(&mut self) -> Result<Step, H1Error> {
        let bad = |m: &str| H1Error::new(Stage::Body, format!("invalid chunked body: {m}"));
        loop {
            let (pos, end) = (self.conn.pos, self.conn.end);
            let have = (end - pos) as u64;
            match self.framing {
                Framing::Done => return Ok(Step::End),
                Framing::Length(0) => {
                    self.framing = Framing::Done;
                    return Ok(Step::End);
                }
                Framing::Length(left) => {
                    if have == 0 {
                        return Ok(Step::More);
                    }
                    let take = left.min(have);
                    self.framing = Framing::Length(left - take);
                    return Ok(Step::Data(self.take(take as usize)));
                }
                Framing::Close => {
                    if have == 0 {
                        return Ok(Step::More);
                    }
                    return Ok(Step::Data(self.take(have as usize)));
                }
                Framing::Chunked(Chunked::Data(left)) => {
                    if have == 0 {
                        return Ok(Step::More);
                    }
                    let take = left.min(have);
                    self.framing = Framing::Chunked(if take == left {
                        Chunked::DataEnd
                    } else {
                        Chunked::Data(left - take)
                    });
                    return Ok(Step::Data(self.take(take as usize)));
                }
                Framing::Chunked(Chunked::DataEnd) => {
                    let Some(line) = self.line()? else {
                        return Ok(Step::More);
                    };
                    if !line.is_empty() {
                        return Err(bad("chunk data is longer than its size"));
                    }
                    self.framing = Framing::Chunked(Chunked::Size);
                }
                Framing::Chunked(Chunked::Size) => {
                    let Some(line) = self.line()? else {
                        return Ok(Step::More);
                    };
                    let size = chunk_size(&self.conn.buf[line])
                        .ok_or_else(|| bad("bad chunk size line"))?;
                    self.framing = Framing::Chunked(if size == 0 {
                        Chunked::Trailers
                    } else {
                        Chunked::Data(size)
                    });
                }
                Framing::Chunked(Chunked::Trailers) => {
                    let Some(line) = self.line()? else {
                        return Ok(Step::More);
                    };
                    if line.is_empty() {
                        self.framing = Framing::Done;
                    }
                }
            }
        }
    }

    /// Consumes `n` buffered bytes and returns where they are.
    fn take(&mut self, n: usize) -> Range<usize> {
        let start = self.conn.pos;
        self.conn.pos += n;
        start..start + n
    }

    /// Consumes one line (ended by LF, with or without CR) and returns where its text is;
    /// `None` if no whole line is buffered.
    fn line(&mut self) -> Result<Option<Range<usize>>, H1Error> {
        let pos = self.conn.pos;
        match memchr::memchr(b'\n', self.conn.unread()) {
            Some(i) => {
                self.conn.pos += i + 1;
                let end = if i > 0 && self.conn.buf[pos + i - 1] == b'\r' {
                    pos + i - 1
                } else {
                    pos + i
                };
                Ok(Some(pos..end))
            }
            None if self.conn.end - pos > MAX_LINE => Err(H1Error::new(
                Stage::Body,
                format!("invalid chunked body: a line longer than {MAX_LINE} bytes"),
            )),
            None => Ok(None),
        }
    }

    /// Ends the answer: a body read to its end on a connection that may carry another request
    /// goes back to the pool; any other is closed.
    pub fn finish(self) {
        if self.framing == Framing::Done && self.keep_alive {
            self.client.checkin(self.conn);
        }
    }
}

/// A chunk-size line's size (hex digits, then optional `;extensions`); `None` if malformed.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line
        .iter()
        .position(|&b| b == b';' || b == b' ' || b == b'\t')
        .map_or(line, |i| &line[..i]);
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        (b as char).to_digit(16).map(|d| n * 16 + u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_are_hex_with_optional_extensions() {
        assert_eq!(chunk_size(b"0"), Some(0));
        assert_eq!(chunk_size(b"1a"), Some(26));
        assert_eq!(chunk_size(b"FF;name=value"), Some(255));
        assert_eq!(chunk_size(b"10 "), Some(16));
        for bad in [&b""[..], b"x", b"-1", b";ext", b"1000000000000000"] {
            assert_eq!(chunk_size(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn heads_decide_the_framing_and_the_reuse() {
        let head = |text: &str| parse_head(text.as_bytes(), false).unwrap().unwrap();
        let (len, status, framing, keep) =
            head("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nrest");
        assert_eq!((len, status), (47, 200));
        assert_eq!(framing, Framing::Chunked(Chunked::Size));
        assert!(keep);
        let (_, _, framing, keep) =
            head("HTTP/1.1 200 OK\r\ncontent-length: 12\r\nconnection: close\r\n\r\n");
        assert_eq!(framing, Framing::Length(12));
        assert!(!keep, "connection: close");
        let (_, _, framing, keep) = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(framing, Framing::Close);
        assert!(!keep, "a body to the close ends the connection");
        let (_, _, _, keep) = head("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n");
        assert!(!keep, "HTTP/1.0 without keep-alive");
        let (_, _, _, keep) =
            head("HTTP/1.0 200 OK\r\ncontent-length: 1\r\nconnection: Keep-Alive\r\n\r\n");
        assert!(keep);
        let (_, status, framing, keep) = head("HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!((status, framing, keep), (204, Framing::Done, true));
        for ambiguous in [
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n",
            "HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n",
        ] {
            let (_, _, framing, keep) = head(ambiguous);
            assert_eq!(framing, Framing::Chunked(Chunked::Size), "{ambiguous:?}");
            assert!(!keep, "{ambiguous:?}");
        }
        let (_, _, framing, keep) = head("HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n");
        assert_eq!((framing, keep), (Framing::Done, true));
        let (_, _, framing, _) = parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!(framing, Framing::Done, "the answer to a HEAD has no body");
        let (_, _, framing, _) =
            head("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n");
        assert_eq!(
            framing,
            Framing::Close,
            "not chunked last: read to the close"
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-le", false),
            Ok(None)
        );
        for bad in [
            "HTTP/1.1 200 OK\r\ncontent-length: 1x\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "SSH-2.0-OpenSSH\r\n\r\n",
        ] {
            assert!(parse_head(bad.as_bytes(), false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn requests_carry_host_headers_length_and_body_in_one_buffer() {
        let url = url::Url::parse("http://[::1]:8000/prefix").unwrap();
        let c = H1Client::new(&url, 4, Duration::from_secs(1), None).unwrap();
        let bytes = c.encode(&Request {
            method: "POST",
            target: "/prefix/v1/completions",
            headers: &[
                ("content-type", b"application/json"),
                ("traceparent", b"00-x"),
            ],
            body: b"{}",
        });
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "POST /prefix/v1/completions HTTP/1.1\r\nhost: [::1]:8000\r\ncontent-type: application/json\r\ntraceparent: 00-x\r\ncontent-length: 2\r\n\r\n{}"
        );
        let default_port = url::Url::parse("http://vllm/").unwrap();
        let c = H1Client::new(&default_port, 4, Duration::from_secs(1), None).unwrap();
        assert_eq!(c.origin.authority, "vllm");
        assert_eq!(c.origin.port, 80);
        let get = c.encode(&Request {
            method: "GET",
            target: "/health",
            headers: &[],
            body: b"",
        });
        assert_eq!(get, b"GET /health HTTP/1.1\r\nhost: vllm\r\n\r\n");
        assert!(
            H1Client::new(
                &url::Url::parse("https://vllm/").unwrap(),
                4,
                Duration::from_secs(1),
                None
            )
            .is_none()
        );
    }

    /// What the test server does with the `n`th request of a connection (from 0).
    #[derive(Clone, Copy)]
    enum Act {
        /// Answers it and keeps the connection.
        Answer,
        /// Answers it, then closes (without saying so: an idle timeout or a restart).
        AnswerThenClose,
        /// Closes without answering.
        Close,
    }

    const SSE: &str = "data: {\"choices\":[{\"text\":\"a\"}]}\n\ndata: [DONE]\n\n";

    /// A chunked SSE answer, cut into pieces of 7 bytes (chunk lines split across reads).
    fn chunked_answer() -> Vec<u8> {
        let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for piece in SSE.as_bytes().chunks(7) {
            out.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\ntrailer: x\r\n\r\n");
        out
    }

    /// A server on 127.0.0.1 that treats each connection's requests as `act(connection,
    /// request)` says. Returns its URL, the connections accepted and the requests received.
    fn server(
        act: impl Fn(usize, usize) -> Act + Send + Sync + 'static,
    ) -> (
        url::Url,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = url::Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let (accepted, received) = (
            std::sync::Arc::new(AtomicUsize::new(0)),
            std::sync::Arc::new(AtomicUsize::new(0)),
        );
        let (a, r) = (accepted.clone(), received.clone());
        let act = std::sync::Arc::new(act);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let conn = a.fetch_add(1, SeqCst);
                let (r, act) = (r.clone(), act.clone());
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    for n in 0.. {
                        // one request: a head and its Content-Length body
                        let total = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                                let len = head
                                    .lines()
                                    .find_map(|l| l.strip_prefix("content-length: "))
                                    .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                                if buf.len() >= i + 4 + len {
                                    break i + 4 + len;
                                }
                            }
                            let mut chunk = [0u8; 4096];
                            match stream.read(&mut chunk) {
                                Ok(0) | Err(_) => return,
                                Ok(k) => buf.extend_from_slice(&chunk[..k]),
                            }
                        };
                        buf.drain(..total);
                        r.fetch_add(1, SeqCst);
                        match act(conn, n) {
                            Act::Close => return,
                            Act::Answer => stream.write_all(&chunked_answer()).unwrap(),
                            Act::AnswerThenClose => {
                                stream.write_all(&chunked_answer()).unwrap();
                                return;
                            }
                        }
                    }
                });
            }
        });
        (url, accepted, received)
    }

    /// Sends one `POST` and reads the answer's body to its end; the body's bytes.
    async fn post(c: &H1Client) -> Result<Vec<u8>, H1Error> {
        let req = Request {
            method: "POST",
            target: "/v1/completions",
            headers: &[("content-type", b"application/json")],
            body: b"{\"prompt\":\"hi\"}",
        };
        let mut resp = c.send(&req, false).await?;
        assert_eq!(resp.status(), 200);
        let mut body = Vec::new();
        while let Some(b) = resp.chunk().await? {
            body.extend_from_slice(b);
        }
        resp.finish();
        Ok(body)
    }

    fn count(n: &std::sync::atomic::AtomicUsize) -> usize {
        n.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_kept_connection_carries_every_request_and_chunked_bodies_decode() {
        let (url, accepted, received) = server(|_, _| Act::Answer);
        let c = H1Client::new(&url, 4, Duration::from_secs(5), None).unwrap();
        for _ in 0..5 {
            assert_eq!(post(&c).await.unwrap(), SSE.as_bytes());
        }
        assert_eq!((count(&accepted), count(&received)), (1, 5));
        assert_eq!(c.idle_count(), 1);
    }

    /// `url`'s test server behind a TLS front, and an `https` client for it under `tls`
    /// (`None`: trusting the front's CA).
    fn over_tls(
        url: &url::Url,
        tls: Option<crate::transport::TlsSettings>,
    ) -> (
        H1Client,
        test_support::tls::TlsFront,
        test_support::tls::TestCa,
    ) {
        use crate::transport::{TlsSettings, VLLM};
        let ca = test_support::tls::TestCa::new();
        let front = test_support::tls::TlsFront::start(url.as_str(), &ca);
        let tls =
            tls.unwrap_or_else(|| TlsSettings::load(&VLLM, Some(&ca.ca_path()), false).unwrap());
        let https = url::Url::parse(front.url()).unwrap();
        let config = tls.rustls_config().unwrap();
        let c = H1Client::new(&https, 4, Duration::from_secs(5), Some(config)).unwrap();
        (c, front, ca)
    }

    /// Over `https` a kept TLS session carries every request (one handshake: the session
    /// tickets the server sends after it do not make the idle connection look closed), and a
    /// session the server closed is replaced at check-out, no request sent twice.
    #[tokio::test]
    async fn over_tls_a_kept_session_carries_every_request_and_a_closed_one_is_replaced() {
        let (url, accepted, received) = server(|_, _| Act::Answer);
        let (c, front, _ca) = over_tls(&url, None);
        assert_eq!(
            c.origin.port,
            front
                .url()
                .rsplit(':')
                .next()
                .unwrap()
                .parse::<u16>()
                .unwrap()
        );
        for _ in 0..5 {
            assert_eq!(post(&c).await.unwrap(), SSE.as_bytes());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(front.handshakes(), 1);
        assert_eq!((count(&accepted), count(&received)), (1, 5));

        let (url, accepted, received) = server(|_, _| Act::AnswerThenClose);
        let (c, front, _ca) = over_tls(&url, None);
        for _ in 0..3 {
            assert_eq!(post(&c).await.unwrap(), SSE.as_bytes());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(front.handshakes(), 3);
        assert_eq!((count(&accepted), count(&received)), (3, 3));
    }

    /// A certificate the client does not trust fails the connect, naming the server, rustls's
    /// reason and the flags that fix it (the error's words are those a user then acts on);
    /// with certificate checks off the same server answers.
    #[tokio::test]
    async fn over_tls_an_untrusted_certificate_fails_the_connect_and_insecure_accepts_it() {
        use crate::transport::{TlsSettings, VLLM};
        let (url, _, received) = server(|_, _| Act::Answer);
        // trusting another CA (and the system's roots, if the machine has any)
        let other = test_support::tls::TestCa::new();
        let elsewhere = TlsSettings::load(&VLLM, Some(&other.ca_path()), false).unwrap();
        let (c, front, _ca) = over_tls(&url, Some(elsewhere));
        let e = post(&c).await.unwrap_err();
        assert_eq!(e.stage, Stage::Connect, "{e:?}");
        let authority = front.url().trim_start_matches("https://");
        assert!(
            e.message
                .starts_with(&format!("TLS handshake with {authority} failed: "))
                && e.message.contains("invalid peer certificate")
                && e.message.ends_with(&format!("({})", VLLM.hint())),
            "{}",
            e.message
        );
        assert_eq!((front.handshakes(), count(&received)), (0, 0));

        let insecure = TlsSettings {
            ca: None,
            insecure: true,
        };
        let (c, front, _ca) = over_tls(&url, Some(insecure));
        assert_eq!(post(&c).await.unwrap(), SSE.as_bytes());
        assert_eq!((front.handshakes(), count(&received)), (1, 1));
    }

    #[tokio::test]
    async fn a_kept_connection_the_server_closed_is_replaced_and_no_request_is_sent_twice() {
        // The server closes each connection right after its answer (an idle timeout): once
        // the close has arrived, the next request finds it at check-out and opens a new one.
        let (url, accepted, received) = server(|_, _| Act::AnswerThenClose);
        let c = H1Client::new(&url, 4, Duration::from_secs(5), None).unwrap();
        for _ in 0..4 {
            assert_eq!(post(&c).await.unwrap(), SSE.as_bytes());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!((count(&accepted), count(&received)), (4, 4));
        // A second request on a kept connection is read, then the connection closes
        // unanswered: the server may have acted on it, so it fails and is not sent again.
        let (url, accepted, received) =
            server(|_, n| if n == 0 { Act::Answer } else { Act::Close });
        let c = H1Client::new(&url, 4, Duration::from_secs(5), None).unwrap();
        assert_eq!(post(&c).await.unwrap(), SSE.as_bytes());
        let e = post(&c).await.unwrap_err();
        assert_eq!(e.stage, Stage::Head, "{e:?}");
        assert_eq!(e.message, "connection closed before an answer began");
        assert_eq!((count(&accepted), count(&received)), (1, 2));
        // a GET there is sent again on a new connection (it changes nothing on the server)
        let (url, accepted, received) =
            server(|_, n| if n == 0 { Act::Answer } else { Act::Close });
        let c = H1Client::new(&url, 4, Duration::from_secs(5), None).unwrap();
        post_fresh(&c).await;
        let req = Request {
            method: "GET",
            target: "/v1/models",
            headers: &[],
            body: b"",
        };
        let mut resp = c.send(&req, false).await.unwrap();
        assert_eq!(resp.status(), 200);
        while resp.chunk().await.unwrap().is_some() {}
        assert_eq!((count(&accepted), count(&received)), (2, 3));
    }

    #[tokio::test]
    async fn a_408_on_a_kept_connection_sends_the_request_again_on_a_new_one() {
        use std::io::{Read, Write};
        // The kept connection answers 408 (the server timed it out before reading anything)
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = url::Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        std::thread::spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                let mut s = stream.unwrap();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    for n in 0.. {
                        if matches!(s.read(&mut buf), Ok(0) | Err(_)) {
                            return;
                        }
                        let answer: &[u8] = if i == 0 && n == 1 {
                            b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
                        } else {
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                        };
                        s.write_all(answer).unwrap();
                    }
                });
            }
        });
        let c = H1Client::new(&url, 4, Duration::from_secs(5), None).unwrap();
        assert_eq!(post(&c).await.unwrap(), b"ok");
        assert_eq!(
            post(&c).await.unwrap(),
            b"ok",
            "sent again on a new connection"
        );
        // a 408 on a new connection is the answer
        let url = one_answer(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n");
        let c = H1Client::new(&url, 4, Duration::from_secs(5), None).unwrap();
        let req = Request {
            method: "POST",
            target: "/",
            headers: &[],
            body: b"{}",
        };
        assert_eq!(c.send(&req, false).await.unwrap().status(), 408);
    }

    /// Opens a new connection and sends one request on it, as `--preconnect` does.
    async fn post_fresh(c: &H1Client) {
        let req = Request {
            method: "GET",
            target: "/health",
            headers: &[],
            body: b"",
        };
        let mut resp = c.send(&req, true).await.unwrap();
        while resp.chunk().await.unwrap().is_some() {}
        resp.finish();
    }

    /// A burst of new connections (the preconnect's, one per stream) resolves the server's
    /// name once; a connect that no address takes forgets the addresses, so the next one looks
    /// the name up again (the server may have moved).
    #[tokio::test]
    async fn a_burst_of_connections_resolves_the_name_once_and_a_failed_connect_forgets_it() {
        use std::sync::atomic::Ordering::SeqCst;
        let (url, accepted, _) = server(|_, _| Act::Answer);
        let mut by_name = url.clone();
        by_name.set_host(Some("localhost")).unwrap();
        let c = H1Client::new(&by_name, 16, Duration::from_secs(5), None).unwrap();
        futures::future::join_all((0..16).map(|_| post_fresh(&c))).await;
        assert_eq!((count(&accepted), c.lookups.load(SeqCst)), (16, 1));

        // nothing listens there any more: the failed connect forgets, the next resolves again
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let c = H1Client::new(
            &url::Url::parse(&format!("http://localhost:{port}/")).unwrap(),
            4,
            Duration::from_secs(5),
            None,
        )
        .unwrap();
        for lookups in 1..=2 {
            let e = c.connect().await.err().unwrap();
            assert_eq!(e.stage, Stage::Connect, "{e:?}");
            assert_eq!(c.lookups.load(SeqCst), lookups);
        }
    }

    /// During a DNS outage a burst of connects makes one lookup and each fails with its cause
    /// (not as a connect timeout after lookups made one after another); the next connect
    /// looks the name up again.
    #[tokio::test]
    async fn a_failed_lookup_fails_every_connect_that_waited_for_it_and_the_next_looks_again() {
        use std::sync::atomic::Ordering::SeqCst;
        let url = url::Url::parse("http://vllm.test:8000/").unwrap();
        let mut c = H1Client::new(&url, 16, Duration::from_secs(10), None).unwrap();
        c.failing_lookup = Some((Duration::from_millis(200), io::ErrorKind::TimedOut));
        let errors = futures::future::join_all((0..16).map(|_| c.connect())).await;
        assert_eq!(c.lookups.load(SeqCst), 1);
        for e in errors {
            let e = e.err().unwrap();
            assert_eq!(e.stage, Stage::Connect, "{e:?}");
            assert_eq!(
                e.message,
                "cannot resolve vllm.test:8000: no answer from the name server"
            );
        }
        assert!(c.connect().await.is_err());
        assert_eq!(c.lookups.load(SeqCst), 2);
    }

    /// A connect whose time runs out while the name is still being looked up says so.
    #[tokio::test]
    async fn a_connect_that_times_out_in_the_lookup_names_the_resolver() {
        let url = url::Url::parse("http://vllm.test:8000/").unwrap();
        let mut c = H1Client::new(&url, 1, Duration::from_millis(100), None).unwrap();
        c.failing_lookup = Some((Duration::from_secs(30), io::ErrorKind::TimedOut));
        let e = c.connect().await.err().unwrap();
        assert_eq!(e.stage, Stage::ConnectTimeout, "{e:?}");
        assert_eq!(
            e.message,
            "no address from the resolver for vllm.test:8000 within 100ms"
        );
    }

    /// Connects take the addresses in turns, each first as often as the others (a headless
    /// service's pods each get their share of a burst), every address tried once.
    #[test]
    fn connects_start_at_each_address_in_turn() {
        let addrs: Vec<SocketAddr> = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let mut first = [0usize; 3];
        for turn in 0..9 {
            let order: Vec<_> = rotated(&addrs, turn).copied().collect();
            assert_eq!(order.len(), 3);
            for a in &addrs {
                assert!(order.contains(a), "{order:?}");
            }
            first[addrs.iter().position(|a| *a == order[0]).unwrap()] += 1;
        }
        assert_eq!(first, [3, 3, 3]);
        assert_eq!(rotated(&addrs[..1], 7).count(), 1);
        assert_eq!(rotated(&[], 3).count(), 0);
    }

    #[tokio::test]
    async fn connections_opened_again_replace_the_pooled_ones_the_server_closed() {
        // A pool of 3 whose connections the server then closes (an idle timeout during a pause
        // between steps); 3 new ones opened before the next step must be the pool, so the
        // step's requests open none.
        let (url, accepted, _) = server(|conn, _| {
            if conn < 3 {
                Act::AnswerThenClose
            } else {
                Act::Answer
            }
        });
        let c = H1Client::new(&url, 3, Duration::from_secs(5), None).unwrap();
        futures::future::join_all((0..3).map(|_| post_fresh(&c))).await;
        assert_eq!(count(&accepted), 3);
        tokio::time::sleep(Duration::from_millis(100)).await; // the closes arrive
        futures::future::join_all((0..3).map(|_| post_fresh(&c))).await;
        assert_eq!((count(&accepted), c.idle_count()), (6, 3));
        for _ in 0..3 {
            futures::future::join_all((0..3).map(|_| post(&c))).await;
        }
        assert_eq!(count(&accepted), 6, "the step opened a connection");
        // a full pool of open connections keeps the newest
        post_fresh(&c).await;
        assert_eq!((count(&accepted), c.idle_count()), (7, 3));
    }

    /// A connection idle in the pool for [`H1Client::keep_idle_for`] is let go, not used: the
    /// server (vLLM's uvicorn, at 5 s) may be closing it as the request goes out. A younger
    /// one is used.
    #[tokio::test]
    async fn a_connection_idle_past_the_limit_is_not_used() {
        let (url, accepted, _) = server(|_, _| Act::Answer);
        let mut c = H1Client::new(&url, 2, Duration::from_secs(5), None).unwrap();
        c.keep_idle_for = Duration::from_millis(200);
        post(&c).await.unwrap();
        post(&c).await.unwrap();
        assert_eq!(count(&accepted), 1, "a young connection is kept");
        tokio::time::sleep(Duration::from_millis(300)).await;
        post(&c).await.unwrap();
        assert_eq!(count(&accepted), 2, "an old one was used");
        assert_eq!(c.idle_count(), 1);
    }

    #[tokio::test]
    async fn a_new_connection_closed_unanswered_fails_without_a_retry() {
        let (url, accepted, received) = server(|_, _| Act::Close);
        let c = H1Client::new(&url, 4, Duration::from_secs(5), None).unwrap();
        let e = post(&c).await.unwrap_err();
        assert_eq!(e.stage, Stage::Head, "{e:?}");
        assert_eq!(e.message, "connection closed before an answer began");
        assert_eq!((count(&accepted), count(&received)), (1, 1));
        assert_eq!(c.idle_count(), 0);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_failure() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = url::Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let c = H1Client::new(&url, 4, Duration::from_secs(5), None).unwrap();
        let e = post(&c).await.unwrap_err();
        assert_eq!(e.stage, Stage::Connect, "{e:?}");
        assert!(
            e.message
                .starts_with(&format!("error connecting to 127.0.0.1:{port}: ")),
            "{e:?}"
        );
    }

    /// Serves `answer` to the first request of one connection, then closes.
    fn one_answer(answer: &'static [u8]) -> url::Url {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = url::Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(answer);
        });
        url
    }

    /// Over `https` a body that runs to the close is whole only when the session ends with
    /// `close_notify`; a session cut without it (the TLS front's upstream reset) fails the body
    /// instead of passing what came as the whole answer.
    #[tokio::test]
    async fn over_tls_a_body_to_the_close_needs_close_notify() {
        use std::io::{Read, Write};
        for reset in [false, true] {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let url =
                url::Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
            std::thread::spawn(move || {
                let (mut s, _) = listener.accept().unwrap();
                // the whole request (unread bytes at the close would reset the connection)
                let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
                while !got.ends_with(b"{\"prompt\":\"hi\"}") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\nto the end");
                std::thread::sleep(Duration::from_millis(100));
                if reset {
                    let abort = nix::libc::linger {
                        l_onoff: 1,
                        l_linger: 0,
                    };
                    nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::Linger, &abort)
                        .unwrap();
                }
            });
            let (c, _front, _ca) = over_tls(&url, None);
            let got = post(&c).await;
            if reset {
                let e = got.unwrap_err();
                assert_eq!(e.stage, Stage::Body, "{e:?}");
                assert!(e.message.contains("without close_notify"), "{}", e.message);
            } else {
                assert_eq!(got.unwrap(), b"to the end");
            }
        }
    }

    #[tokio::test]
    async fn bodies_end_by_length_by_close_or_fail_when_cut() {
        let c = |url: &url::Url| H1Client::new(url, 4, Duration::from_secs(5), None).unwrap();
        let url = one_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello");
        let client = c(&url);
        assert_eq!(post(&client).await.unwrap(), b"hello");
        assert_eq!(
            client.idle_count(),
            1,
            "a whole Content-Length body keeps the connection"
        );
        let url = one_answer(b"HTTP/1.0 200 OK\r\n\r\nto the end");
        let client = c(&url);
        assert_eq!(post(&client).await.unwrap(), b"to the end");
        assert_eq!(client.idle_count(), 0);
        for cut in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nshort"[..],
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n",
        ] {
            let e = post(&c(&one_answer(cut))).await.unwrap_err();
            assert_eq!(e.stage, Stage::Body, "{e:?}");
            assert_eq!(e.message, "connection closed before the end of the body");
        }
        let e = post(&c(&one_answer(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n",
        )))
        .await
        .unwrap_err();
        assert_eq!(
            e.message,
            "invalid chunked body: chunk data is longer than its size"
        );
        let e = post(&c(&one_answer(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        )))
        .await
        .unwrap_err();
        assert_eq!(e.message, "invalid chunked body: bad chunk size line");
        let e = post(&c(&one_answer(b"HTTP/1.1 200 OK\r\nconte")))
            .await
            .unwrap_err();
        assert_eq!(e.stage, Stage::Head);
        assert_eq!(
            e.message,
            "connection closed in the middle of the answer's head"
        );
    }

    #[tokio::test]
    async fn interim_answers_are_skipped_and_a_huge_head_is_refused() {
        let url = one_answer(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        );
        let c = H1Client::new(&url, 4, Duration::from_secs(5), None).unwrap();
        assert_eq!(post(&c).await.unwrap(), b"ok");
        let huge: &'static [u8] = Box::leak(
            format!("HTTP/1.1 200 OK\r\nx: {}\r\n\r\n", "a".repeat(MAX_HEAD))
                .into_bytes()
                .into_boxed_slice(),
        );
        let c = H1Client::new(&one_answer(huge), 4, Duration::from_secs(5), None).unwrap();
        let e = post(&c).await.unwrap_err();
        assert_eq!(e.stage, Stage::Head, "{e:?}");
        assert!(e.message.contains("longer than 64 KiB"), "{e:?}");
    }
}
