//! The `load-test` binary's command line, as a library target so tests can check every manifest
//! in `workflows/` and `deploy/` against [`cli::Cli`].

pub mod cli;
pub mod merge_cli;
