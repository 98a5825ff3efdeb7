//! The simulator for tests: the `vllm-sim` binary as a server process on a loopback port,
//! waited for until `/health` answers, owned by a test ([`SimProcess`], stopped on drop) or
//! detached for the local stack; or in-process on its own runtime ([`Sim`], for tests that are
//! not async themselves); and eval files in the seed's format ([`eval_file`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::{http, process};

/// How long a start may take before `/health` answers.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Spawns `bin --host 127.0.0.1 --port PORT ARGS...` with `envs` added, in its own process
/// group, output appended to `log`, and waits for `/health`.
pub fn spawn(
    bin: &Path,
    port: u16,
    args: &[String],
    envs: &[(String, String)],
    log: &Path,
) -> Result<Child, String> {
    let mut cmd = Command::new(bin);
    cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)));
    let mut child = process::spawn_group(&mut cmd, log)
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    if let Err(why) = process::wait_until(&mut child, "vllm-sim", log, READY_TIMEOUT, || {
        matches!(http::get(port, "/health"), Ok((200, _)))
    }) {
        process::stop_group(&mut child);
        return Err(why);
    }
    Ok(child)
}

/// A running `vllm-sim` process; stopped (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub struct SimProcess {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl SimProcess {
    /// Starts `bin` on `port` with `args` (after `--host` and `--port`); panics with the log
    /// when it does not become healthy.
    pub fn start(bin: &Path, port: u16, args: &[String], log: &Path) -> Self {
        let child = spawn(bin, port, args, &[], log).unwrap_or_else(|e| panic!("{e}"));
        SimProcess {
            child,
            port,
            log: log.to_path_buf(),
        }
    }

    /// Base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `host:port`, as a Prometheus target.
    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Stops it now (as on drop).
    pub fn stop(mut self) {
        process::stop_group(&mut self.child);
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        process::stop_group(&mut self.child);
    }
}

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

    /// The `traceparent` header of each generation request the simulator received.
    pub fn traceparents(&self) -> Vec<String> {
        self.handle
            .as_ref()
            .expect("invariant: the handle lives until drop")
            .traceparents()
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

/// Writes `dir/tokenizer.json`: a Hugging Face word-level tokenizer (whitespace split, every
/// word one token, unknown words `[UNK]`) that adds a BOS token `<s>`, as a model's would: a
/// text of `n` words is `n + 1` tokens. For `--tokenizer-file` tests (no model is downloaded).
pub fn tokenizer_file(dir: &Path) -> PathBuf {
    let p = dir.join("tokenizer.json");
    let doc = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [
            {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false,
             "normalized": false, "special": true}
        ],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "<s>": 1, "the": 2, "of": 3}, "unk_token": "[UNK]"}
    });
    std::fs::write(&p, doc.to_string()).expect("the tokenizer file is written");
    p
}
