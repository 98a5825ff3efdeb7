//! The `vllm-sim` binary: env fallbacks, the ready line, graceful SIGTERM, bad flags.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vllm-sim"));
    cmd.env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Kills the child if a test fails before it exits.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(unix)]
#[tokio::test]
async fn env_configures_and_sigterm_stops_gracefully() {
    let child = bin()
        .args(["--port", "0"])
        .env("VLLM_SIM_SERVED_MODEL_NAME", "env-base")
        .env("VLLM_SIM_LORA_MODULES", "a=/lora/a,b=/lora/b")
        .env("VLLM_SIM_TTFT", "0.001")
        .spawn()
        .expect("binary starts");
    let mut guard = Guard(child);
    let stderr = guard.0.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("vllm-sim listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("ready line on stderr");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let models: Value =
        serde_json::from_str(&test_support::wire::get_text(&format!("{url}/v1/models")).await)
            .expect("json");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| m["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["env-base", "a", "b"]);
    assert_eq!(models["data"][2]["parent"], "env-base");

    let status = Command::new("kill")
        .args(["-TERM", &guard.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let mut exited = None;
    for _ in 0..100 {
        if let Some(s) = guard.0.try_wait().expect("wait") {
            exited = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exit = exited.expect("exits within 5 s of SIGTERM");
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn invalid_flags_exit_with_a_message() {
    let out = bin()
        .args(["--port", "0", "--error-rate", "2"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--error-rate must be in [0, 1]"),
        "{stderr}"
    );

    let out = bin()
        .args(["--lora-modules", "no-path"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid lora module"));

    let out = bin().args(["--ttft", "soon"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2), "clap rejects bad durations");

    let out = bin()
        .args(["--port", "0", "--adapter-latency-scale", "prod=1.3"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--adapter-latency-scale names `prod`, which is not served"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bin()
        .args(["--adapter-latency-scale", "candidate=0"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid adapter latency scale"));
}

#[tokio::test]
async fn api_llamacpp_serves_llama_server_s_routes() {
    let child = bin()
        .args(["--port", "0", "--api", "llamacpp", "--ttft", "0.001"])
        .args(["--served-model-name", "tiny-llama"])
        .spawn()
        .expect("binary starts");
    let mut guard = Guard(child);
    let stderr = guard.0.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("vllm-sim listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("ready line on stderr");
    let health = test_support::wire::get_text(&format!("{url}/health")).await;
    assert_eq!(health, "{\"status\":\"ok\"}");
    let props: Value =
        serde_json::from_str(&test_support::wire::get_text(&format!("{url}/props")).await)
            .expect("json");
    assert_eq!(props["model_alias"], "tiny-llama");
    let (status, _, body) = test_support::wire::post(
        &format!("{url}/completion"),
        &serde_json::json!({"prompt": "hi", "n_predict": 3, "stream": true}),
    )
    .await;
    assert_eq!(status, 200);
    let last: Value = serde_json::from_str(
        body.trim_end()
            .rsplit("\n\n")
            .next()
            .and_then(|e| e.strip_prefix("data: "))
            .expect("a last event"),
    )
    .expect("json");
    assert_eq!(last["stop"], true, "{body}");
    assert_eq!(last["tokens_predicted"], 3);
    // a body llama.cpp would refuse is a 400 with its error shape; the OpenAI routes are gone
    let (status, _, body) =
        test_support::wire::post(&format!("{url}/completion"), &serde_json::json!({})).await;
    assert_eq!(status, 400, "{body}");
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["error"]["code"], 400);
    let (status, _, _) = test_support::wire::post(
        &format!("{url}/v1/completions"),
        &serde_json::json!({"prompt": "hi"}),
    )
    .await;
    assert_eq!(status, 404);
}
