//! What the gate's binaries (`load-test`, `perf-decision`, `vllm-sim`) share at their edge, and
//! the library does not carry: clap and the tracing subscriber stay out of `perf-gate`.
//!
//! - [`config_file`]: `--config FILE`, a YAML file of flags under the command line and env vars,
//!   and the `config.json` record of the effective values.
//! - [`env`](mod@env): parse a command line where an env var set to `""` counts as unset.
//! - [`logging`]: `--log-format text|json`, the subscriber on stderr, `RUST_LOG`.
//! - [`progress_bar`]: `--progress auto|bar|lines|off`, load-test's terminal progress bar.
//! - [`signals`]: a cancellation token for SIGINT/SIGTERM; the binary chooses what a second
//!   signal does.
//! - [`parse`], [`seconds::Seconds`]: clap value parsers for the flags' number and duration formats.
#![warn(missing_docs)]

pub mod config_file;
pub mod env;
pub mod logging;
pub mod parse;
pub mod progress_bar;
pub mod seconds;
pub mod signals;
