//! Shared helpers of the `load-test` CLI tests: a vllm-sim on its own runtime, eval files,
//! running the binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

/// A simulator running on a private runtime; stopped on drop.
pub struct Sim {
    pub url: String,
    handle: Option<vllm_sim::SimHandle>,
    rt: tokio::runtime::Runtime,
}

impl Sim {
    pub fn start(cfg: vllm_sim::SimConfig) -> Sim {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let handle = rt.block_on(vllm_sim::spawn(cfg)).unwrap();
        Sim {
            url: handle.base_url(),
            handle: Some(handle),
            rt,
        }
    }

    pub fn stats(&self) -> vllm_sim::SimStats {
        self.handle.as_ref().unwrap().stats()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = self.rt.block_on(h.shutdown());
        }
    }
}

/// Writes `n` prompts in the seed's format.
pub fn eval_file(dir: &Path, n: usize) -> PathBuf {
    let p = dir.join("eval.jsonl");
    let text: String = (0..n)
        .map(|i| format!("{{\"prompt_inference\": \"question number {i} about S3\"}}\n"))
        .collect();
    std::fs::write(&p, text).unwrap();
    p
}

/// `load-test` with a clean environment (no inherited VLLM_URL etc.) and no backtraces.
pub fn load_test() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_load-test"));
    for var in [
        "VLLM_URL",
        "ADAPTER_NAME",
        "EVAL_DATA_PATH",
        "CONCURRENCY",
        "MAX_TOKENS",
        "PROMETHEUS_URL",
        "OUTPUT_DIR",
        "VLLM_API_KEY",
        "REQUEST_TIMEOUT",
        "NUM_REQUESTS",
        "RATE",
        "LOG_FORMAT",
    ] {
        c.env_remove(var);
    }
    c.env("RUST_BACKTRACE", "0").env("RUST_LOG", "info");
    c
}

pub fn run(cmd: &mut std::process::Command) -> Output {
    cmd.output().expect("load-test runs")
}

pub fn results(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("load_test_results.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn status(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("load_test_status.txt"))
        .unwrap()
        .trim()
        .to_string()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
