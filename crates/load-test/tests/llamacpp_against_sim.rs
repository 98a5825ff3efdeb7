//! `load-test --api llamacpp` end to end against `vllm-sim --api llamacpp` (llama.cpp's native
//! `llama-server` API on the sim's engine; its fidelity to the real server is
//! `crates/vllm-sim/tests/fidelity_llamacpp.rs`, the real server itself is
//! `real_llamacpp.rs`): the requests go to `POST /completion`, the token counts come from the
//! last (`"stop": true`) chunk, the adapter is a LoRA of `/lora-adapters` or the model alias,
//! the flag works from the command line, the env and the config file, and the run says it has
//! no server-side figures and is no vLLM gate measurement.

use std::time::Duration;

use serde_json::Value;
use test_support::sim::{Sim, eval_file};
use test_support::steps::{load_test, load_test_against, load_test_results, run, stderr};

fn llama_sim(lora: bool) -> Sim {
    Sim::start(vllm_sim::SimConfig {
        api: vllm_sim::SimApi::Llamacpp,
        served_model_name: "tiny-llama".into(),
        lora_modules: if lora {
            vec![vllm_sim::LoraModule::new(
                "candidate",
                "/models/candidate.gguf",
            )]
        } else {
            Vec::new()
        },
        ttft: Duration::from_millis(20),
        itl: Duration::from_millis(5),
        ..Default::default()
    })
}

/// What every llama.cpp run's results must say.
fn assert_llamacpp_run(r: &Value, requests: u64) {
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["config"]["api"], "llamacpp");
    assert_eq!(
        r["config"]["preconnect"], false,
        "no connection outlives a request"
    );
    let c = &r["client"];
    assert_eq!(c["total_requests"], requests, "{c}");
    assert_eq!(c["successful_requests"], requests, "{c}");
    assert!(
        r["server"].is_null(),
        "no server-side figures: {}",
        r["server"]
    );
    assert_eq!(r["validity"]["valid"], false);
    let reasons = r["validity"]["reasons"].to_string();
    assert!(reasons.contains("not a vLLM gate measurement"), "{reasons}");
    let departures = r["departures"].to_string();
    assert!(
        departures.contains("--api llamacpp: no server-side figures"),
        "{departures}"
    );
    assert!(
        departures.contains("vllm_metrics.csv is not written"),
        "{departures}"
    );
}

#[test]
fn serial_llamacpp_mode_end_to_end_with_a_lora_adapter() {
    let sim = llama_sim(true);
    let dir = tempfile::tempdir().unwrap();
    let run = load_test_against(
        &sim.url,
        dir.path(),
        4,
        &[
            "--api",
            "llamacpp",
            "--max-tokens",
            "8",
            "--num-requests",
            "12",
            "--concurrency",
            "3",
        ],
    );
    assert!(run.output.status.success(), "{}", stderr(&run.output));
    let r = load_test_results(&run.out);
    assert_llamacpp_run(&r, 12);
    // the adapter is the LoRA llama-server loaded (named by its file), on the model alias
    assert_eq!(r["adapter"]["name"], "candidate");
    assert_eq!(r["adapter"]["root"], "/models/candidate.gguf");
    assert_eq!(r["adapter"]["parent"], "tiny-llama");
    // every count is the last chunk's: 8 predicted (n_predict), the prompt's evaluated
    assert_eq!(r["client"]["output_tokens"], 12 * 8, "{}", r["client"]);
    assert_eq!(run.records.len(), 12);
    for rec in &run.records {
        assert_eq!(rec["ok"], true, "{rec}");
        assert_eq!(rec["output_tokens"], 8, "{rec}");
        assert!(rec["prompt_tokens"].as_u64().unwrap() > 0, "{rec}");
        assert_eq!(rec["finish_reason"], "length", "stop_type limit: {rec}");
        assert_eq!(rec["content_chunks"], 8, "one event per token: {rec}");
        let ttft = rec["ttft_s"].as_f64().unwrap();
        let e2e = rec["e2e_s"].as_f64().unwrap();
        assert!(
            ttft >= 0.015 && e2e > ttft,
            "the sim's 20 ms TTFT, then tokens: {rec}"
        );
        assert!(
            rec["itl_mean_s"].as_f64().unwrap() > 0.0,
            "gaps between tokens: {rec}"
        );
    }
    // the requests reached the sim's /completion (it counts the generation requests)
    assert_eq!(sim.stats().accepted, 12);
}

#[test]
fn serial_llamacpp_mode_from_the_config_file_and_the_env_with_the_model_alias() {
    let sim = llama_sim(false);
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 3);
    let cfg = dir.path().join("load-test.yaml");
    std::fs::write(
        &cfg,
        format!(
            "vllm-url: {}\nadapter-name: tiny-llama\napi: llamacpp\nmax-tokens: 4\nprogress-interval: 0\n",
            sim.url
        ),
    )
    .unwrap();
    let out = dir.path().join("file");
    let o = run(load_test()
        .arg("--config")
        .arg(&cfg)
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    let r = load_test_results(&out);
    assert_llamacpp_run(&r, 3);
    assert_eq!(
        r["adapter"]["name"], "tiny-llama",
        "the alias of /v1/models"
    );
    assert!(r["adapter"]["root"].is_null());
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(record["values"]["api"]["source"], "file", "{record}");

    let out = dir.path().join("env");
    let o = run(load_test()
        .env("LOAD_TEST_API", "llamacpp")
        .args(["--vllm-url", &sim.url, "--adapter-name", "tiny-llama"])
        .args(["--max-tokens", "4", "--progress-interval", "0"])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_llamacpp_run(&load_test_results(&out), 3);
}

#[test]
fn an_adapter_llama_server_does_not_serve_is_named_with_what_it_serves() {
    let sim = llama_sim(true);
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 2);
    let out = dir.path().join("out");
    let o = run(load_test()
        .args([
            "--vllm-url",
            &sim.url,
            "--adapter-name",
            "other",
            "--api",
            "llamacpp",
        ])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("tiny-llama, LoRA /models/candidate.gguf"),
        "the alias and the LoRA are listed: {err}"
    );
    assert_eq!(sim.stats().accepted, 0, "nothing was sent");
}

#[test]
fn flags_llamacpp_cannot_honour_are_bad_input() {
    for (extra, says) in [
        (
            &["--endpoint", "chat"][..],
            "--endpoint chat needs --api openai",
        ),
        (
            &["--baseline-adapter", "b"][..],
            "--baseline-adapter \"b\" needs --api openai",
        ),
        (
            &["--prometheus-url", "http://127.0.0.1:9"][..],
            "--prometheus-url needs --api openai",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let eval = eval_file(dir.path(), 1);
        let o = run(load_test()
            .args([
                "--vllm-url",
                "http://127.0.0.1:9",
                "--adapter-name",
                "a",
                "--api",
                "llamacpp",
            ])
            .args(extra)
            .arg("--eval-data-path")
            .arg(&eval)
            .arg("--output-dir")
            .arg(dir.path().join("out")));
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{extra:?}: {}", stderr(&o));
    }
    // chat rows cannot go to /completion: refused before the network
    let dir = tempfile::tempdir().unwrap();
    let eval = dir.path().join("chat.jsonl");
    std::fs::write(
        &eval,
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\n",
    )
    .unwrap();
    let o = run(load_test()
        .args([
            "--vllm-url",
            "http://127.0.0.1:9",
            "--adapter-name",
            "a",
            "--api",
            "llamacpp",
        ])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(dir.path().join("out")));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("prompt 1 holds chat messages"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn serial_synthetic_prompts_are_sized_without_vllm_s_tokenize() {
    let sim = llama_sim(false);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = run(load_test()
        .args([
            "--vllm-url",
            &sim.url,
            "--adapter-name",
            "tiny-llama",
            "--api",
            "llamacpp",
        ])
        .args([
            "--input-size",
            "12",
            "--num-requests",
            "4",
            "--max-tokens",
            "4",
        ])
        .args(["--progress-interval", "0"])
        .arg("--output-dir")
        .arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    let r = load_test_results(&out);
    assert_llamacpp_run(&r, 4);
    assert_eq!(r["inputs"]["calibration"], "words", "{}", r["inputs"]);
}
