//! The batch window: how long the load's runtime lets network events gather before it goes to
//! sleep waiting for more (`--batch-window`).
//!
//! The client is faster than its server, so without a window it handles each token as it
//! comes and sleeps in `epoll_wait` until the next: at 1,024 streams about 14,000 sleeps and
//! wake-ups a second (`perf stat`: 151,605 context switches in an 11 s run), each a context
//! switch. Waiting a moment before sleeping lets the tokens that arrive meanwhile be handled in
//! one pass (measured at 1,024 streams, medians of 3 runs: 0.58 ms of CPU a request without a
//! window, 0.53 ms with 200 µs; an earlier trial gave 0.55, 0.49 and 0.48 ms with 500 µs).
//!
//! Arrival times do not move where every chunk is dated by the kernel's receive time (the own
//! client on Linux, `client::timed_socket`): when a chunk is handled no longer changes when it
//! is recorded to have arrived. So the window is open only while the requests run and only
//! when every target is read by the own client; it closes for good if sockets come without
//! receive times. What the wait does change: a request due meanwhile goes out up to the window
//! late, plus the kernel's timer slack (its clock starts at the send, and the wait shows in
//! `client_queue_s`); a connection opened during the load can wait a window inside its TTFT;
//! tokens of one stream closer together than the window are read together and share a time.
//! So the window is small and bounded by [`MAX_WINDOW`]. One load at a time: the window is
//! process-wide.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Longest window accepted: well under any latency a load measures.
pub const MAX_WINDOW: Duration = Duration::from_millis(5);
/// The window `--batch-window` gives by default.
pub const DEFAULT_WINDOW: Duration = Duration::from_micros(200);

/// The open window in nanoseconds; 0 when closed.
static WINDOW_NS: AtomicU64 = AtomicU64::new(0);
/// Set when a socket was refused receive times: its chunks are dated when handled, so no
/// window may delay their handling.
static UNSTAMPED: AtomicBool = AtomicBool::new(false);

/// The runtime's `on_thread_park` hook: waits out the open window, if any, before the worker
/// sleeps for events.
pub fn before_park() {
    if let Some(w) = current() {
        std::thread::sleep(w);
    }
}

/// The window open now, if any (none once a socket was refused receive times).
fn current() -> Option<Duration> {
    let ns = WINDOW_NS.load(Ordering::Relaxed);
    (ns > 0 && !UNSTAMPED.load(Ordering::Relaxed)).then(|| Duration::from_nanos(ns))
}

/// Records that a socket reads without receive times: the window stays closed from now on.
pub(crate) fn unstamped_socket() {
    if !UNSTAMPED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "the kernel gives no receive times for this client's sockets: chunks are timed when \
             read (a busy client adds its wait), and the batch window is closed"
        );
    }
}

/// Whether this system dates the own client's chunks by the kernel's receive time.
pub fn receive_times() -> bool {
    cfg!(any(target_os = "linux", target_os = "android")) && !UNSTAMPED.load(Ordering::Relaxed)
}

/// An open window; dropping it closes the window.
#[derive(Debug)]
pub struct BatchWindow(());

impl BatchWindow {
    /// Opens a window of `window` (at most [`MAX_WINDOW`]) until the guard is dropped. A zero
    /// window leaves it closed.
    pub fn open(window: Duration) -> Self {
        let ns = u64::try_from(window.min(MAX_WINDOW).as_nanos()).unwrap_or(0);
        WINDOW_NS.store(ns, Ordering::Relaxed);
        BatchWindow(())
    }
}

impl Drop for BatchWindow {
    fn drop(&mut self) {
        WINDOW_NS.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Only an open window delays the park, and only while its guard lives, cut to the bound;
    /// a socket without receive times closes it. (One test: the window is process-wide.)
    #[test]
    fn the_window_is_open_only_while_its_guard_lives_and_stamps_hold() {
        assert_eq!(current(), None);
        {
            let _open = BatchWindow::open(Duration::from_millis(3));
            assert_eq!(current(), Some(Duration::from_millis(3)));
            let t = Instant::now();
            before_park();
            assert!(t.elapsed() >= Duration::from_millis(3));
        }
        assert_eq!(current(), None);
        let _zero = BatchWindow::open(Duration::ZERO);
        assert_eq!(current(), None);
        let _open = BatchWindow::open(Duration::from_secs(60));
        assert_eq!(current(), Some(MAX_WINDOW));
        assert!(receive_times() || !cfg!(target_os = "linux"));
        unstamped_socket();
        assert_eq!(current(), None);
        assert!(!receive_times());
        UNSTAMPED.store(false, Ordering::Relaxed);
    }
}
