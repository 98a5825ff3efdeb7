//! Test fixtures and tools shared by the integration tests and the scripts:
//!
//! - real servers (Prometheus, its Pushgateway, MLflow, moto) started as child processes on free loopback ports,
//!   stopped when the fixture is dropped ([`prometheus`], [`pushgateway`], [`mlflow`]), and the simulator as a
//!   process or on its own runtime ([`sim`]);
//! - the deployment manifests' reader and strict renderer ([`manifest`]) and the check of every
//!   command line they give against the binaries' own `Cli::command()` ([`clicheck`]);
//! - the binaries run with a clean environment and their files read back ([`steps`]); what
//!   servers send, parsed the plain way ([`wire`]); results checked against `schemas/`
//!   ([`schema`]). Results documents built in code are `perf_gate::fixtures` (feature
//!   `fixtures`);
//! - [`fault_proxy`] sits between a client and a real server and delays, holds, drops or
//!   answers chosen calls, logging what it did and when;
//! - [`tls`] makes a test CA and puts a TLS-terminating front before any of these servers;
//! - [`chromium`] runs headless Chromium on a page (DOM, screenshot) with a proxy that records
//!   every request it makes;
//! - [`history`] models vLLM servers scraped by Prometheus sample by sample, and [`backfill`]
//!   loads such a history into a real Prometheus, for exact tests of windowed PromQL.
//!
//! Missing binaries are an error, never a silent skip: `scripts/install-test-deps.sh` installs them.

pub mod alloc;
pub mod backfill;
pub mod chromium;
pub mod clicheck;
pub mod fault_proxy;
pub mod faults;
pub mod history;
pub mod http;
pub mod manifest;
pub mod mlflow;
pub mod process;
pub mod prometheus;
pub mod pushgateway;
pub mod run;
pub mod schema;
pub mod sim;
pub mod stack;
pub mod steps;
pub mod tls;
pub mod wire;

/// The text of the calling crate's `tests/fixtures/<name>`.
#[macro_export]
macro_rules! fixture {
    ($name:expr) => {
        $crate::wire::read_fixture(
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"),
            $name,
        )
    };
}

/// The JSON body (first line starting with `{`) of the calling crate's `tests/fixtures/<name>`.
#[macro_export]
macro_rules! fixture_json {
    ($name:expr) => {
        $crate::wire::json_line(&$crate::fixture!($name))
    };
}

/// A free TCP port on 127.0.0.1 (bound then released; good enough for tests run here).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("invariant: can bind an ephemeral loopback port")
}

/// The machine-wide cache directory the project's scripts install tools into
/// (`$VPG_CACHE_DIR`, else `$HOME/.cache/vllm-perf-gate`).
pub fn cache_dir() -> std::path::PathBuf {
    if let Ok(d) = std::env::var("VPG_CACHE_DIR") {
        return d.into();
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    std::path::Path::new(&home).join(".cache/vllm-perf-gate")
}
