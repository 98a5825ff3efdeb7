//! Log setup shared by the binaries: `tracing` to stderr, human-readable by default, one JSON
//! object per line with `--log-format json` (for Kubernetes). `RUST_LOG` overrides the level.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `json` selects JSON lines. Safe to call once per process.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .with_target(false);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.compact().try_init()
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}

/// Resolves when SIGINT or SIGTERM arrives (Kubernetes sends SIGTERM before killing a pod).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A token cancelled by the first SIGINT/SIGTERM; a second signal exits at once with code 4.
/// Must be called inside a Tokio runtime.
pub fn cancel_on_signal() -> tokio_util::sync::CancellationToken {
    let cancel = tokio_util::sync::CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::warn!("signal received: stopping (send again to exit at once)");
        on_signal.cancel();
        shutdown_signal().await;
        std::process::exit(i32::from(crate::exit::ABORTED));
    });
    cancel
}
