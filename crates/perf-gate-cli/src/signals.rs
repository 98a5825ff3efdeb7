//! SIGINT/SIGTERM for the binaries: the first signal cancels a token (the step drains and
//! writes honest files); a second one runs the binary's own choice (an immediate exit).
//!
//! The handlers are installed when [`cancel_on_signal`] is called, not when a task first runs:
//! a step busy with synchronous work (reading its files) before its first await would otherwise
//! be killed by the default action, with no exit code of the table and no log line.

use tokio_util::sync::CancellationToken;

/// SIGINT and SIGTERM, registered at construction (Kubernetes sends SIGTERM before killing a
/// pod; a terminal sends SIGINT).
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Installs the handlers now. Must be called inside a Tokio runtime.
    fn register() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let term = signal(SignalKind::terminate())
                .inspect_err(|e| tracing::warn!(error = %e, "cannot handle SIGTERM"))
                .ok();
            let int = signal(SignalKind::interrupt())
                .inspect_err(|e| tracing::warn!(error = %e, "cannot handle SIGINT"))
                .ok();
            Signals { term, int }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    /// Resolves at the next SIGINT or SIGTERM (one delivered before this call counts).
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = next(&mut self.term) => {}
                () = next(&mut self.int) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() {
    Signals::register().recv().await;
}

/// A token cancelled by the first SIGINT/SIGTERM; `on_second` runs on the second (a binary
/// passes `|| std::process::exit(4)`). The handlers are installed before this returns. Must be
/// called inside a Tokio runtime.
pub fn cancel_on_signal(on_second: impl FnOnce() + Send + 'static) -> CancellationToken {
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    let mut signals = Signals::register();
    tokio::spawn(async move {
        signals.recv().await;
        tracing::warn!("signal received: stopping (send again to exit at once)");
        on_signal.cancel();
        signals.recv().await;
        on_second();
    });
    cancel
}
