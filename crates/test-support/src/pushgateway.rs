//! A REAL Prometheus Pushgateway (Debian's `prometheus-pushgateway` binary) started on a free
//! loopback port, its log in a temp dir. Stopped (its process group) when dropped.
//!
//! The binary is `$PUSHGATEWAY_BIN`, else `prometheus-pushgateway` (then `pushgateway`) on
//! `PATH`. If it is missing the fixture panics: tests never skip silently.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use crate::{http, process};

/// A running Pushgateway; killed on drop.
#[derive(Debug)]
pub struct PushgatewayServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// The Pushgateway binary: `$PUSHGATEWAY_BIN`, else `prometheus-pushgateway` or `pushgateway`
/// on `PATH`.
pub fn find_pushgateway() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("PUSHGATEWAY_BIN") {
        return Ok(PathBuf::from(bin));
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .flat_map(|d| [d.join("prometheus-pushgateway"), d.join("pushgateway")])
        .find(|p| p.is_file())
        .ok_or_else(|| "prometheus-pushgateway not found: run scripts/install-test-deps.sh".into())
}

impl PushgatewayServer {
    /// Starts a Pushgateway and waits until `/-/ready` answers 200. Panics on failure, with
    /// its log.
    pub fn start() -> Self {
        let bin = find_pushgateway().unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().expect("invariant: can create a temp dir");
        let log = dir.path().join("pushgateway.log");
        let mut last = String::new();
        // the free port is released before the gateway binds it: retry if another process won
        for _ in 0..3 {
            let port = crate::free_port();
            let mut cmd = Command::new(&bin);
            cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"));
            let mut child = process::spawn_group(&mut cmd, &log)
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            match process::wait_until(
                &mut child,
                "pushgateway",
                &log,
                Duration::from_secs(30),
                || matches!(http::get(port, "/-/ready"), Ok((200, _))),
            ) {
                Ok(()) => return PushgatewayServer { child, port, dir },
                Err(why) => {
                    process::stop_group(&mut child);
                    last = why;
                }
            }
        }
        panic!("pushgateway did not become ready: {last}")
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `host:port`, as a scrape target.
    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `GET path`: status and body. Panics on a transport error.
    pub fn get(&self, path: &str) -> (u16, String) {
        http::get(self.port, path).unwrap_or_else(|e| panic!("GET {path} on {}: {e}", self.url()))
    }

    /// The gateway's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pushgateway.log")).unwrap_or_default()
    }
}

impl Drop for PushgatewayServer {
    fn drop(&mut self) {
        process::stop_group(&mut self.child);
    }
}
