//! The `perf-decision` binary's command line, as a library target so tests can check every
//! manifest in `workflows/` and `deploy/` against [`cli::Cli`].

pub mod cli;
