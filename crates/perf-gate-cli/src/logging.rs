//! Log setup of the binaries: `tracing` to stderr, human-readable by default, one JSON object
//! per line with `--log-format json` (for Kubernetes). `RUST_LOG` overrides the level (default
//! `info`); `NO_COLOR` or a non-terminal stderr turns colours off.
//!
//! While `load-test` draws its progress bar, each line is written with the bar lifted
//! ([`crate::progress_bar::suspend`]), so lines and bar never garble each other.
//!
//! Every line goes through [`perf_gate::secrets::scrub`] on its way out ([`ScrubbedStderr`]):
//! whatever a library, reqwest or hyper logs (at any level, `RUST_LOG=trace` included), no
//! known secret reaches stderr.

use std::io::Write;

use tracing_subscriber::EnvFilter;

/// stderr, with every known secret taken out of each write (one log line per write).
#[derive(Debug, Clone, Copy, Default)]
pub struct ScrubbedStderr;

impl Write for ScrubbedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let clean = perf_gate::secrets::scrub(&text);
        // above a progress bar, not through it
        crate::progress_bar::suspend(|| std::io::stderr().lock().write_all(clean.as_bytes()))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// `--log-format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for Kubernetes log collectors).
    Json,
}

/// Installs the global subscriber. A second call (tests) keeps the first subscriber.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| ScrubbedStderr)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .with_target(false);
    let installed = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.compact().try_init(),
    };
    // Only fails when a subscriber is already installed: keep that one.
    drop(installed);
}
