//! A TCP connection whose reads say when their bytes arrived: the kernel's receive time of the
//! newest segment read (`SO_TIMESTAMPNS`), not the time the reading task got round to it.
//!
//! A client timing a stream with the clock it reads when its task runs adds its own scheduling
//! delay to every figure: at 512 streams on one core a burst of tokens queues behind the ones
//! read before it, and the last stream of the burst records its token a few milliseconds late
//! (the tail of the TTFT and inter-token figures). The kernel stamps each segment as it enters
//! the socket, before any task runs, so the time recorded is the arrival whatever the client's
//! load. Linux only; elsewhere, or where the option is refused, a read gives no receive time
//! and the caller reads its clock as before (so do the segments that arrive in the moment after
//! the first socket asks, while the kernel turns stamping on for the system).
//!
//! The stamp is on the realtime clock; it becomes an [`Instant`] as "now minus its age", with
//! both clocks read right after the read (the realtime one first, so a pause between the two
//! makes the arrival later, never earlier). An age that makes no sense (negative, or over
//! [`MAX_AGE`]) gives now instead.
//!
//! A read's stamp is that of the last segment (in sequence order) it took. After a loss, data
//! held out of order keeps the stamp of its first arrival and becomes readable only when the
//! gap is filled, so a stamp can be older than the moment its bytes could be read. The
//! arrival is therefore never put before the last time this socket was seen empty (a read
//! that did not fill the buffer): bytes read later became readable after it.

use std::io::{self, Read as _, Write as _};
use std::net::TcpStream as StdStream;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// Oldest receive time believed: older means the realtime clock was set forward in between.
const MAX_AGE: Duration = Duration::from_secs(10);

/// A connected, non-blocking TCP socket read with receive times where the system gives them.
pub(crate) struct TimedSocket {
    fd: AsyncFd<StdStream>,
    /// Room for one timestamp control message; empty when reads give no receive time.
    control: Vec<u8>,
    /// The last time a read found this socket emptied (no arrival is put before it).
    emptied: Option<Instant>,
    /// When the bytes of the last read that brought any arrived.
    last: Option<Instant>,
    /// Reads that brought bytes with a receive time, and without one.
    stamped: u32,
    unstamped: u32,
}

/// Reads with bytes but no receive time, on a socket that never gave one, after which the
/// system is taken not to give them (a sandboxed kernel): the batch window closes. The first
/// segments after stamping is first asked for can come without one (it is turned on for the
/// system in a deferred work item).
const UNSTAMPED_READS: u32 = 16;

impl TimedSocket {
    /// Takes over a connected tokio stream and asks the kernel for receive times.
    pub fn new(stream: tokio::net::TcpStream) -> io::Result<Self> {
        let stream = stream.into_std()?;
        let control = receive_times(&stream);
        Ok(TimedSocket {
            fd: register(stream)?,
            control,
            emptied: None,
            last: None,
            stamped: 0,
            unstamped: 0,
        })
    }

    /// Whether reads give the kernel's receive time.
    #[cfg(test)]
    pub fn stamps(&self) -> bool {
        !self.control.is_empty()
    }

    /// Reads that brought bytes (counted until the first with a receive time, then those with
    /// one).
    #[cfg(test)]
    pub fn reads_with_data(&self) -> u32 {
        self.stamped + self.unstamped
    }

    /// Reads into `buf`: how many bytes (0 at the end of the stream) and when the newest of them
    /// arrived, if the kernel said.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<(usize, Option<Instant>)> {
        std::future::poll_fn(|cx| self.poll_read_at(cx, &mut *buf)).await
    }

    /// When the bytes of the last read that brought any arrived, if the kernel said: the time
    /// of the bytes a TLS session decrypted from it.
    pub fn last_arrival(&self) -> Option<Instant> {
        self.last
    }

    /// [`TimedSocket::read`] as a poll.
    fn poll_read_at(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, Option<Instant>)>> {
        let len = buf.len();
        loop {
            // polled as tokio's own streams poll (no `Readiness` future to register and drop)
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let control = &mut self.control;
            match guard.try_io(|fd| recv(fd.get_ref(), &mut *buf, control)) {
                Ok(Ok((n, at))) => {
                    // a read that did not fill the buffer emptied the socket (epoll, as tokio's
                    // own streams assume): the next read waits for the reactor instead of
                    // costing a system call that would only say "empty"
                    let emptied = n > 0 && n < len;
                    if emptied {
                        guard.clear_ready();
                    }
                    let arrived = match at {
                        Some(at) => {
                            self.stamped = self.stamped.saturating_add(1);
                            let (now, arrived) = arrival(at, self.emptied);
                            if emptied {
                                self.emptied = Some(now);
                            }
                            Some(arrived)
                        }
                        None => {
                            if n > 0 && !self.control.is_empty() && self.stamped == 0 {
                                self.unstamped += 1;
                                if self.unstamped == UNSTAMPED_READS {
                                    super::batch_window::unstamped_socket();
                                }
                            }
                            None
                        }
                    };
                    if n > 0 {
                        self.last = arrived;
                    }
                    return Poll::Ready(Ok((n, arrived)));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => {}
            }
        }
    }

    /// Writes all of `bytes`. The first attempt goes straight to the socket: a connection just
    /// handed over has no readiness recorded yet, and waiting for the reactor to report it
    /// would delay a request's first write.
    pub async fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        match self.fd.get_ref().write(bytes) {
            Ok(0) if !bytes.is_empty() => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        while !bytes.is_empty() {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| fd.get_ref().write(bytes)) {
                Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(Ok(n)) => bytes = &bytes[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
        Ok(())
    }

    /// Reads without waiting, and without a system call unless the reactor saw the socket
    /// readable (`WouldBlock` then).
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd
            .try_io(Interest::READABLE, |s| (&*s).read(&mut *buf))
    }
}

/// The socket as a byte stream, for a TLS session on top ([`TimedSocket::last_arrival`] then
/// says when the bytes of its last read arrived).
impl AsyncRead for TimedSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let (n, _) = ready!(this.poll_read_at(cx, buf.initialize_unfilled()))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl TimedSocket {
    /// Runs `write` once the socket is writable, again whenever it would block.
    fn poll_write_with(
        &self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&StdStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            if let Ok(result) = guard.try_io(|fd| write(fd.get_ref())) {
                return Poll::Ready(result);
            }
        }
    }
}

impl AsyncWrite for TimedSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, |s| (&*s).write(bytes))
    }

    /// rustls hands its records over as one vector: one `writev` sends them all.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, |s| (&*s).write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.fd.get_ref().shutdown(std::net::Shutdown::Write))
    }
}

/// Asserts that a read `after` its bytes were written (at `written`) dated them to the write:
/// within 50 ms of it, and at least `after` before now (a time taken at the read would not be).
#[cfg(test)]
pub(crate) fn assert_dated_at_the_write(at: Option<Instant>, written: Instant, after: Duration) {
    let at = at.expect("a receive time");
    let late = at.saturating_duration_since(written);
    assert!(
        late < Duration::from_millis(50),
        "dated {late:?} after the write"
    );
    assert!(Instant::now().duration_since(at) >= after);
}

/// Registers `stream` with the reactor.
#[expect(
    unsafe_code,
    reason = "tokio's only sound way to register a descriptor"
)]
fn register(stream: StdStream) -> io::Result<AsyncFd<StdStream>> {
    // SAFETY: `register` needs the descriptor to stay open and the same while the `AsyncFd`
    // lives. A std `TcpStream` owns its descriptor, closes it only when dropped (which the
    // `AsyncFd`, owning it, does after deregistering), and `as_raw_fd` always gives that one;
    // nothing here takes the stream out or swaps it (no `get_mut`, no `into_inner`).
    unsafe { AsyncFd::register(stream) }.map_err(io::Error::from)
}

/// Now, and the instant a receive time on the realtime clock stands for, never before
/// `floor`.
fn arrival(at: SystemTime, floor: Option<Instant>) -> (Instant, Instant) {
    // the realtime clock first: a pause before the monotonic read makes the age smaller (the
    // arrival later), never larger
    let real = SystemTime::now();
    let now = Instant::now();
    let arrived = match real.duration_since(at) {
        Ok(age) if age <= MAX_AGE => now.checked_sub(age).unwrap_or(now),
        _ => now,
    };
    (now, floor.map_or(arrived, |f| arrived.max(f)))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod os {
    use std::io::{self, IoSliceMut, Read as _};
    use std::net::TcpStream;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, SystemTime};

    use nix::sys::socket::{
        ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt::ReceiveTimestampns,
    };
    use nix::sys::time::TimeSpec;

    /// Turns receive times on; the control-message room reads need (empty if refused).
    pub(super) fn receive_times(s: &TcpStream) -> Vec<u8> {
        match setsockopt(s, ReceiveTimestampns, &true) {
            Ok(()) => nix::cmsg_space!(TimeSpec),
            Err(e) => {
                tracing::debug!("SO_TIMESTAMPNS refused: {e}");
                super::super::batch_window::unstamped_socket();
                Vec::new()
            }
        }
    }

    /// One read, with the receive time of the newest segment in it if `control` has room.
    pub(super) fn recv(
        s: &TcpStream,
        buf: &mut [u8],
        control: &mut [u8],
    ) -> io::Result<(usize, Option<SystemTime>)> {
        if control.is_empty() {
            return (&*s).read(buf).map(|n| (n, None));
        }
        let mut iov = [IoSliceMut::new(buf)];
        let msg = recvmsg::<()>(s.as_raw_fd(), &mut iov, Some(control), MsgFlags::empty())?;
        let mut at = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmTimestampns(ts) = c {
                    at = u64::try_from(ts.tv_sec()).ok().map(|s| {
                        SystemTime::UNIX_EPOCH
                            + Duration::new(s, u32::try_from(ts.tv_nsec()).unwrap_or(0))
                    });
                }
            }
        }
        Ok((msg.bytes, at))
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod os {
    use std::io::{self, Read as _};
    use std::net::TcpStream;
    use std::time::SystemTime;

    /// This system gives no receive times here ([`super::super::batch_window::receive_times`]
    /// says so for it).
    pub(super) fn receive_times(_: &TcpStream) -> Vec<u8> {
        Vec::new()
    }

    /// A plain read.
    pub(super) fn recv(
        s: &TcpStream,
        buf: &mut [u8],
        _: &mut [u8],
    ) -> io::Result<(usize, Option<SystemTime>)> {
        (&*s).read(buf).map(|n| (n, None))
    }
}

use os::{receive_times, recv};

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use tokio::net::TcpListener;

    async fn pair() -> (TimedSocket, tokio::net::TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        (
            TimedSocket::new(client.unwrap()).unwrap(),
            server.unwrap().0,
        )
    }

    /// The receive time is when the bytes arrived, not when the task read them: a read 200 ms
    /// after the write still dates them to the write. Reading the clock at the read (what the
    /// client did before) gives 200 ms later.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[tokio::test]
    async fn a_late_read_dates_the_bytes_to_their_arrival() {
        let (mut client, server) = pair().await;
        assert!(client.stamps());
        // the kernel turns stamping on for the whole system in a deferred work item when the
        // first socket asks (segments received before it carry no time): give it a moment
        std::thread::sleep(Duration::from_millis(50));
        let server = server.into_std().unwrap();
        let written = Instant::now();
        (&server).write_all(b"data: token\n\n").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let mut buf = [0u8; 64];
        let (n, at) = client.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"data: token\n\n");
        assert_dated_at_the_write(at, written, Duration::from_millis(200));

        // the newest segment of a read decides its time
        (&server).write_all(b"one").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let second = Instant::now();
        (&server).write_all(b"two").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let (n, at) = client.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"onetwo");
        let at = at.unwrap();
        assert!(at >= second && at < second + Duration::from_millis(50));

        // the end of the stream, and writes both ways
        client.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        (&server).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        drop(server);
        assert_eq!(client.read(&mut buf).await.unwrap().0, 0);
    }

    /// A socket whose reads never carry a receive time (a kernel that takes the option and
    /// gives none: room for a stamp, none asked for here) closes the batch window after
    /// [`UNSTAMPED_READS`] reads with data, not before; its reads give no arrival.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[tokio::test]
    async fn reads_that_never_carry_a_receive_time_close_the_window() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let mut client = TimedSocket {
            fd: register(client.unwrap().into_std().unwrap()).unwrap(),
            control: nix::cmsg_space!(nix::sys::time::TimeSpec),
            emptied: None,
            last: None,
            stamped: 0,
            unstamped: 0,
        };
        let server = server.unwrap().0.into_std().unwrap();
        let mut buf = [0u8; 16];
        for i in 1..=UNSTAMPED_READS {
            assert!(
                super::super::batch_window::receive_times(),
                "closed after {i} reads"
            );
            (&server).write_all(b"x").unwrap();
            let (n, at) = client.read(&mut buf).await.unwrap();
            assert_eq!((n, at), (1, None));
        }
        assert!(!super::super::batch_window::receive_times());
        assert_eq!(client.last_arrival(), None);
    }

    /// `try_read` says `WouldBlock` with nothing sent, and reads what was sent once the
    /// reactor saw it.
    #[tokio::test]
    async fn try_read_reads_only_what_arrived() {
        let (client, server) = pair().await;
        let mut probe = [0u8; 1];
        assert_eq!(
            client.try_read(&mut probe).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        let server = server.into_std().unwrap();
        (&server).write_all(b"x").unwrap();
        let fd = &client.fd;
        fd.readable().await.unwrap().retain_ready();
        assert_eq!(client.try_read(&mut probe).unwrap(), 1);
    }

    /// A receive time from the future, or too far back, gives now; none is put before the
    /// floor (the last time the socket was seen empty).
    #[test]
    fn ages_that_make_no_sense_give_now_and_the_floor_holds() {
        let before = Instant::now();
        let (now, future) = arrival(SystemTime::now() + Duration::from_secs(5), None);
        assert_eq!(future, now);
        assert!(future >= before);
        let (now, stale) = arrival(SystemTime::now() - MAX_AGE - Duration::from_secs(1), None);
        assert_eq!(stale, now);
        let (now, recent) = arrival(SystemTime::now() - Duration::from_millis(300), None);
        assert!(recent + Duration::from_millis(250) < now);
        // a segment held out of order keeps its first arrival's stamp: the floor wins
        let floor = Instant::now() - Duration::from_millis(100);
        let (_, held) = arrival(SystemTime::now() - Duration::from_millis(300), Some(floor));
        assert_eq!(held, floor);
        let (_, later) = arrival(SystemTime::now() - Duration::from_millis(50), Some(floor));
        assert!(later > floor);
    }
}
