//! SIGINT/SIGTERM for the binaries: the first signal cancels a token (the step drains and
//! writes honest files); a second one runs the binary's own choice (an immediate exit).

use tokio_util::sync::CancellationToken;

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

/// A token cancelled by the first SIGINT/SIGTERM; `on_second` runs on the second (a binary
/// passes `|| std::process::exit(4)`). Must be called inside a Tokio runtime.
pub fn cancel_on_signal(on_second: impl FnOnce() + Send + 'static) -> CancellationToken {
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::warn!("signal received: stopping (send again to exit at once)");
        on_signal.cancel();
        shutdown_signal().await;
        on_second();
    });
    cancel
}
