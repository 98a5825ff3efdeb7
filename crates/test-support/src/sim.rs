//! A `vllm-sim` on its own runtime, for tests that are not async themselves (CLI tests run the
//! binaries as child processes against it), and eval files in the seed's format.

use std::path::{Path, PathBuf};

/// A simulator running on a private runtime; stopped on drop.
pub struct Sim {
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    handle: Option<vllm_sim::SimHandle>,
    rt: tokio::runtime::Runtime,
}

impl Sim {
    /// Starts a simulator with `cfg` (use port 0 in `cfg.addr` for a free one).
    pub fn start(cfg: vllm_sim::SimConfig) -> Sim {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime for the simulator");
        let handle = rt
            .block_on(vllm_sim::spawn(cfg))
            .expect("the simulator starts");
        Sim {
            url: handle.base_url(),
            handle: Some(handle),
            rt,
        }
    }

    /// What the simulator has seen so far.
    pub fn stats(&self) -> vllm_sim::SimStats {
        self.handle
            .as_ref()
            .expect("invariant: the handle lives until drop")
            .stats()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = self.rt.block_on(h.shutdown());
        }
    }
}

/// Writes `dir/eval.jsonl` with `n` prompts in the seed's format (`prompt_inference`).
pub fn eval_file(dir: &Path, n: usize) -> PathBuf {
    let p = dir.join("eval.jsonl");
    let text: String = (0..n)
        .map(|i| format!("{{\"prompt_inference\": \"question number {i} about S3\"}}\n"))
        .collect();
    std::fs::write(&p, text).expect("the eval file is written");
    p
}
