//! A fault-injecting HTTP/1.1 proxy for tests: placed between a client (e.g. `perf-decision`)
//! and a real server (e.g. [`MlflowServer`](crate::mlflow::MlflowServer)), it forwards every
//! request and answer, except those a [`Rule`] picks, which it delays, holds, drops after
//! forwarding, or answers itself ([`Action`]). Every request is logged with what was done to
//! it and when ([`Exchange`]), so a test can assert orderings: a claim that landed after the
//! client gave up, a write that landed although the client saw an error.
//!
//! The proxy runs on its own thread and runtime, so sync and async tests use it alike; it
//! stops when dropped (requests still held are then abandoned, never forwarded). It is
//! transparent: method, path and query, headers and body go on byte for byte, except the
//! hop-by-hop headers (`Connection`, `Transfer-Encoding`, ...), which a proxy does not pass on,
//! and `Host`, which becomes the upstream's. Keep-alive connections stay open as the client
//! asks (each request is matched on its own); chunked bodies are read whole and sent on with a
//! `Content-Length`. Answers too are read whole before they are passed on: no streaming (an SSE
//! stream arrives at once, when it ends).
//!
//! ```no_run
//! use std::time::Duration;
//! use test_support::fault_proxy::{Action, FaultProxy, Outcome, Rule};
//! use test_support::mlflow::MlflowServer;
//!
//! let mlflow = MlflowServer::start();
//! // the first claim of `perf-passed` is held 5 s, then lands unanswered
//! let proxy = FaultProxy::start(
//!     mlflow.url(),
//!     vec![
//!         Rule::new(Action::HoldThenForward { hold: Duration::from_secs(5) })
//!             .method("POST")
//!             .path("/api/2.0/mlflow/registered-models/alias")
//!             .body_contains(r#""alias":"perf-passed""#)
//!             .first(1),
//!     ],
//! );
//! // ... point the client at proxy.url() (with a request timeout under 5 s) ...
//! let log = proxy.wait_for(Duration::from_secs(10), "the held claim lands", |log| {
//!     log.iter().any(|e| e.rule == Some(0) && e.landed.is_some())
//! });
//! assert_ne!(log[0].outcome, Outcome::Answered { status: 200 });
//! ```

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

mod rules;
mod serve;

pub use rules::{Action, PathMatch, Rule, Times};

use rules::RuleSet;
use serve::Upstream;

/// How many bytes of a request body the log keeps.
pub const BODY_EXCERPT: usize = 1024;

/// Bound of one forwarded call by default (past it the client gets a 502).
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// Polling interval of [`FaultProxy::wait_for`].
const POLL: Duration = Duration::from_millis(10);

/// A running proxy on a free 127.0.0.1 port; stopped on drop.
pub struct FaultProxy {
    url: String,
    upstream: String,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Settings of a [`FaultProxy`] before it starts ([`FaultProxy::builder`]).
#[derive(Debug)]
pub struct FaultProxyBuilder {
    upstream: String,
    rules: Vec<Rule>,
    seed: u64,
    upstream_timeout: Duration,
}

/// One request that went through the proxy, as far as it got.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// Position in arrival order (from 0).
    pub seq: usize,
    /// The client connection it came on (from 1, in accept order): requests of one keep-alive
    /// connection share it.
    pub connection: u64,
    /// The method, `POST`.
    pub method: String,
    /// The path with its query, as the client sent it.
    pub path: String,
    /// The first [`BODY_EXCERPT`] bytes of the body, as lossy UTF-8 (an invalid byte becomes
    /// U+FFFD, so the text can be longer in bytes than the excerpt).
    pub body: String,
    /// Index of the rule that applied, if one did.
    pub rule: Option<usize>,
    /// The action taken (a [`Action::DelayRange`] as the [`Action::Delay`] drawn); `None` for
    /// a plain pass-through.
    pub action: Option<Action>,
    /// When the whole request had been read.
    pub received: Instant,
    /// When it was sent upstream.
    pub forwarded: Option<Instant>,
    /// When the upstream's whole answer had come back (the write has landed).
    pub landed: Option<Instant>,
    /// The upstream's status.
    pub upstream_status: Option<u16>,
    /// Why the upstream call failed (the client got a 502).
    pub upstream_error: Option<String>,
    /// When the answer was handed to the client's connection.
    pub answered: Option<Instant>,
    /// How it ended.
    pub outcome: Outcome,
}

/// How an [`Exchange`] ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not yet ended (held, delayed, or waiting for the upstream).
    InFlight,
    /// The client was answered with this status (the upstream's, a canned one, or a 502).
    Answered {
        /// The status the client got.
        status: u16,
    },
    /// A rule closed the client's connection without answering.
    Dropped,
    /// The client had closed its connection (e.g. timed out) before its answer was ready.
    ClientGone,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:PORT`, optionally with a path prefix)
    /// with `rules`, seed 0 ([`FaultProxy::builder`] for more).
    ///
    /// # Panics
    /// If `upstream` is not an `http://` URL, or no thread, runtime or port can be had.
    pub fn start(upstream: &str, rules: Vec<Rule>) -> FaultProxy {
        FaultProxy::builder(upstream).rules(rules).start()
    }

    /// A proxy to `upstream` to set up: no rules, seed 0, [`DEFAULT_UPSTREAM_TIMEOUT`].
    pub fn builder(upstream: &str) -> FaultProxyBuilder {
        FaultProxyBuilder {
            upstream: upstream.to_string(),
            rules: Vec::new(),
            seed: 0,
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
        }
    }

    /// Its base URL, `http://127.0.0.1:PORT`: give it to the client instead of the upstream's.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The upstream's base URL, as given.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// Replaces the rules (their counts start again; generators are seeded again from the
    /// proxy's seed). Requests already received keep the action they got.
    pub fn set_rules(&self, rules: Vec<Rule>) {
        let seed = self.shared.seed;
        *self.shared.rules() = RuleSet::new(rules, seed);
    }

    /// The log so far, in arrival order.
    pub fn requests(&self) -> Vec<Exchange> {
        self.shared.log().clone()
    }

    /// Waits (blocking, polling every 10 ms) until `done` holds for the log, and returns that
    /// log. For async tests see [`FaultProxy::wait_for_async`].
    ///
    /// # Panics
    /// After `timeout`, with `what` and the log.
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[Exchange]) -> bool,
    ) -> Vec<Exchange> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(log) = self.check(deadline, timeout, what, &done) {
                return log;
            }
            std::thread::sleep(POLL);
        }
    }

    /// [`FaultProxy::wait_for`] without blocking the caller's runtime.
    ///
    /// # Panics
    /// After `timeout`, with `what` and the log.
    pub async fn wait_for_async(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[Exchange]) -> bool,
    ) -> Vec<Exchange> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(log) = self.check(deadline, timeout, what, &done) {
                return log;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn check(
        &self,
        deadline: Instant,
        timeout: Duration,
        what: &str,
        done: &impl Fn(&[Exchange]) -> bool,
    ) -> Option<Vec<Exchange>> {
        let log = self.requests();
        if done(&log) {
            return Some(log);
        }
        assert!(
            Instant::now() < deadline,
            "fault proxy: not the case after {timeout:?}: {what}; the log:\n{log:#?}"
        );
        None
    }

    /// Stops it now (as on drop).
    pub fn stop(self) {}
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            // the runtime is dropped on its own thread: no "runtime dropped in async context"
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("url", &self.url)
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl FaultProxyBuilder {
    /// Adds a rule after those already given.
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Adds rules after those already given.
    pub fn rules(mut self, rules: impl IntoIterator<Item = Rule>) -> Self {
        self.rules.extend(rules);
        self
    }

    /// Seed of the rules' generators (rule `i` gets `seed + i`), for [`Times::Probability`]
    /// and [`Action::DelayRange`]. The draws repeat from run to run for requests that arrive in
    /// the same order, with the same `rand` version.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Bound of one forwarded call, past which the client gets a 502 (default
    /// [`DEFAULT_UPSTREAM_TIMEOUT`]).
    pub fn upstream_timeout(mut self, timeout: Duration) -> Self {
        self.upstream_timeout = timeout;
        self
    }

    /// Binds a free 127.0.0.1 port and starts serving on a thread of its own.
    ///
    /// # Panics
    /// If the upstream is not an `http://` URL, or no thread, runtime or port can be had.
    pub fn start(self) -> FaultProxy {
        let base = self.upstream.trim_end_matches('/').to_string();
        let authority = base
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("fault proxy: upstream must be http://, not {base}"));
        assert!(
            !authority.is_empty(),
            "fault proxy: no host in upstream {base}"
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .expect("fault proxy: cannot bind a loopback port");
        let port = listener
            .local_addr()
            .expect("invariant: a bound listener has an address")
            .port();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("fault proxy: cannot build a runtime");
        let shared = Arc::new(Shared {
            seed: self.seed,
            rules: Mutex::new(RuleSet::new(self.rules, self.seed)),
            log: Mutex::new(Vec::new()),
        });
        let upstream = Upstream {
            base,
            timeout: self.upstream_timeout,
        };
        let (tx, rx) = oneshot::channel();
        let serving = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{port}"))
            .spawn(move || {
                rt.block_on(serve::run(listener, serving, upstream, rx));
                // dropping `rt` here ends the connections and any held requests
            })
            .expect("fault proxy: cannot spawn its thread");
        FaultProxy {
            url: format!("http://127.0.0.1:{port}"),
            upstream: self.upstream,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }
}

/// What the serving side and the test share: the rules with their state, and the log. The
/// log is a list updated in place (each exchange gets its timestamps as it goes) and read as a
/// snapshot from any thread, hence a mutex rather than a channel.
struct Shared {
    seed: u64,
    rules: Mutex<RuleSet>,
    log: Mutex<Vec<Exchange>>,
}

impl Shared {
    fn rules(&self) -> MutexGuard<'_, RuleSet> {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn log(&self) -> MutexGuard<'_, Vec<Exchange>> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends `e`, numbered; returns its number.
    fn push(&self, mut e: Exchange) -> usize {
        let mut log = self.log();
        let seq = log.len();
        e.seq = seq;
        log.push(e);
        seq
    }

    fn update(&self, seq: usize, f: impl FnOnce(&mut Exchange)) {
        if let Some(e) = self.log().get_mut(seq) {
            f(e);
        }
    }
}
