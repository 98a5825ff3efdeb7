//! `load-test --api llamacpp` against a REAL llama.cpp `llama-server`, built by
//! `scripts/llamacpp/setup.sh` from PyPI's llama-cpp-python sdist (which vendors llama.cpp) and
//! serving the tiny Llama of `scripts/vllm/make_tiny_model.py` converted to GGUF, with its LoRA
//! adapter (`--lora candidate.gguf`). `scripts/test.sh` runs the setup first; without the
//! built server (a bare `cargo nextest run`) the test says so and skips: nothing else skips it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use test_support::process::{spawn_group, stop_group, wait_until};
use test_support::sim::eval_file;
use test_support::steps::{load_test, load_test_results, request_records, run, stderr};

/// The cache directory of `scripts/llamacpp/setup.sh`.
fn llamacpp_dir() -> PathBuf {
    std::env::var_os("LLAMACPP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| test_support::cache_dir().join("llamacpp"))
}

/// A running `llama-server`, stopped on drop.
struct Server {
    child: std::process::Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        stop_group(&mut self.child);
    }
}

fn start(dir: &std::path::Path, log: &std::path::Path) -> Server {
    let port = test_support::free_port();
    let mut cmd = Command::new(dir.join("bin/llama-server"));
    cmd.arg("-m")
        .arg(dir.join("tiny.gguf"))
        .arg("--lora")
        .arg(dir.join("candidate.gguf"))
        .args(["--alias", "tiny-llama", "--host", "127.0.0.1"])
        .args([
            "--port",
            &port.to_string(),
            "-c",
            "2048",
            "-np",
            "2",
            "-t",
            "2",
        ]);
    let mut child = spawn_group(&mut cmd, log).expect("llama-server starts");
    let url = format!("http://127.0.0.1:{port}");
    let ready = wait_until(
        &mut child,
        "llama-server",
        log,
        Duration::from_secs(120),
        || test_support::http::get(port, "/health").is_ok_and(|(status, _)| status == 200),
    );
    let server = Server { child, url };
    if let Err(e) = ready {
        panic!("{e}");
    }
    server
}

fn load(url: &str, dir: &std::path::Path, name: &str, adapter: &str) -> (Value, Vec<Value>) {
    let eval = eval_file(dir, 4);
    let out = dir.join(name);
    let o = run(load_test()
        .args([
            "--vllm-url",
            url,
            "--adapter-name",
            adapter,
            "--api",
            "llamacpp",
        ])
        .args(["--max-tokens", "8", "--ignore-eos", "--num-requests", "8"])
        .args(["--concurrency", "2", "--progress-interval", "0"])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    (load_test_results(&out), request_records(&out))
}

#[test]
fn serial_load_test_speaks_llama_server_s_native_api() {
    let dir = llamacpp_dir();
    if !dir.join("bin/llama-server").exists() {
        eprintln!(
            "SKIP real_llamacpp: no llama-server in {} (scripts/llamacpp/setup.sh builds it; scripts/test.sh runs it)",
            dir.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&dir, &tmp.path().join("llama-server.log"));

    // the LoRA adapter, by its file name: found in /lora-adapters, applied to every request
    let (r, records) = load(&server.url, tmp.path(), "lora", "candidate");
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["config"]["api"], "llamacpp");
    assert_eq!(r["adapter"]["parent"], "tiny-llama", "{}", r["adapter"]);
    assert!(
        r["adapter"]["root"]
            .as_str()
            .unwrap()
            .ends_with("candidate.gguf"),
        "{}",
        r["adapter"]
    );
    assert_eq!(r["client"]["successful_requests"], 8, "{}", r["client"]);
    assert_eq!(r["client"]["output_tokens"], 8 * 8, "{}", r["client"]);
    assert!(r["server"].is_null());
    assert_eq!(r["validity"]["valid"], false);
    assert_eq!(records.len(), 8);
    for rec in &records {
        assert_eq!(rec["ok"], true, "{rec}");
        // with ignore_eos every output runs to n_predict: stop_type limit, 8 tokens counted
        // by the server's last chunk and 8 token events seen by the client
        assert_eq!(rec["output_tokens"], 8, "{rec}");
        assert_eq!(rec["finish_reason"], "length", "{rec}");
        // one event per token, except that llama-server holds back a token that ends inside
        // a UTF-8 character and sends it with the next (seen with this model: 8 tokens in 5
        // events), so the counts are the last chunk's, never the events'
        let chunks = rec["content_chunks"].as_u64().unwrap();
        assert!((1..=8).contains(&chunks), "{rec}");
        assert!(rec["prompt_tokens"].as_u64().unwrap() > 1, "{rec}");
        let (ttft, e2e) = (
            rec["ttft_s"].as_f64().unwrap(),
            rec["e2e_s"].as_f64().unwrap(),
        );
        assert!(ttft > 0.0 && e2e >= ttft, "{rec}");
    }

    // the base model, by its alias of /v1/models
    let (r, _) = load(&server.url, tmp.path(), "alias", "tiny-llama");
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["adapter"]["name"], "tiny-llama");
    assert!(r["adapter"]["root"].is_null());
    assert_eq!(r["client"]["successful_requests"], 8);
}
