//! The simulator's HTTP API against captures of a real vLLM 0.32 (`tests/fixtures/`).

use std::time::Duration;

use serde_json::{Value, json};
use test_support::wire::*;
use test_support::{fixture, fixture_json};
use vllm_sim::{SimConfig, SimHandle, spawn};

/// A fast simulator: tests here check shapes, not timing.
async fn sim() -> SimHandle {
    sim_with(SimConfig::default()).await
}

async fn sim_with(config: SimConfig) -> SimHandle {
    spawn(SimConfig {
        ttft: Duration::from_millis(2),
        itl: Duration::from_millis(1),
        ..config
    })
    .await
    .expect("sim starts")
}

#[tokio::test]
async fn health_version_and_unknown_routes() {
    let sim = sim().await;
    let resp = client()
        .get(format!("{}/health", sim.base_url()))
        .send()
        .await
        .expect("health");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.expect("body"), "");
    let v: Value = serde_json::from_str(&get_text(&format!("{}/version", sim.base_url())).await)
        .expect("json");
    assert!(v["version"].as_str().expect("string").starts_with("0.32.0"));
    let resp = client()
        .get(format!("{}/nope", sim.base_url()))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn models_listing_has_the_real_shape() {
    let sim = sim().await;
    let real: Value = serde_json::from_str(&fixture!("models.json")).expect("fixture");
    let ours: Value =
        serde_json::from_str(&get_text(&format!("{}/v1/models", sim.base_url())).await)
            .expect("json");
    assert_eq!(key_paths(&ours), key_paths(&real));
    for i in 0..2 {
        assert_eq!(key_paths(&ours["data"][i]), key_paths(&real["data"][i]));
    }
    assert_eq!(ours["data"][0]["id"], "tiny-base");
    assert_eq!(ours["data"][0]["root"], "/models/base");
    assert_eq!(ours["data"][0]["parent"], Value::Null);
    assert_eq!(ours["data"][0]["max_model_len"], 1024);
    assert_eq!(ours["data"][1]["id"], "candidate");
    assert_eq!(ours["data"][1]["parent"], "tiny-base");
    assert_eq!(ours["data"][1]["root"], "/models/lora");
    assert_eq!(ours["data"][1]["max_model_len"], Value::Null);
}

fn completion_body(n: u32, usage: bool) -> Value {
    json!({"model": "candidate", "prompt": "The license says", "max_tokens": n, "stream": true,
           "stream_options": {"include_usage": usage}})
}

fn chat_body(n: u32, options: Value) -> Value {
    json!({"model": "candidate", "messages": [{"role": "user", "content": "Hello there"}],
           "max_tokens": n, "stream": true, "stream_options": options})
}

#[tokio::test]
async fn completions_stream_matches_the_real_framing() {
    let sim = sim().await;
    let url = format!("{}/v1/completions", sim.base_url());
    let (status, ctype, body) = post(&url, &completion_body(8, true)).await;
    assert_eq!(status, 200);
    assert_eq!(ctype, "text/event-stream; charset=utf-8");
    let ours = sse_json_done(&body);
    let real = sse_json_done(&fixture!("completions_stream.sse"));
    assert_eq!(ours.len(), 8 + 1, "8 content chunks and a usage chunk");
    for (i, chunk) in ours[..8].iter().enumerate() {
        assert_eq!(key_paths(chunk), key_paths(&real[i]), "chunk {i}");
        let finish = &chunk["choices"][0]["finish_reason"];
        assert_eq!(*finish, if i == 7 { json!("length") } else { Value::Null });
        assert_eq!(chunk["model"], "candidate");
        assert_eq!(chunk["id"], ours[0]["id"]);
    }
    assert!(ours[0]["id"].as_str().expect("id").starts_with("cmpl-"));
    assert_eq!(key_paths(&ours[8]), key_paths(&real[8]));
    assert_eq!(ours[8]["choices"], json!([]));
    assert_eq!(
        ours[8]["usage"],
        json!({"prompt_tokens": 5, "total_tokens": 13, "completion_tokens": 8})
    );

    let (_, _, body) = post(&url, &completion_body(3, false)).await;
    let ours = sse_json_done(&body);
    assert_eq!(ours.len(), 3, "no usage chunk unless asked");
    assert!(ours.iter().all(|c| c.get("usage").is_none()));
}

#[tokio::test]
async fn chat_stream_matches_the_real_framing() {
    let sim = sim().await;
    let url = format!("{}/v1/chat/completions", sim.base_url());

    let (_, ctype, body) = post(&url, &chat_body(6, json!({"include_usage": true}))).await;
    assert_eq!(ctype, "text/event-stream; charset=utf-8");
    let ours = sse_json_done(&body);
    let real = sse_json_done(&fixture!("chat_stream.sse"));
    assert_eq!(ours.len(), 1 + 6 + 1, "role, 6 content chunks, usage");
    assert_eq!(
        ours[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(key_paths(&ours[0]), key_paths(&real[0]));
    assert_eq!(key_paths(&ours[1]), key_paths(&real[1]));
    assert_eq!(
        key_paths(&ours[6]),
        key_paths(&real[6]),
        "last content chunk"
    );
    assert_eq!(ours[6]["choices"][0]["finish_reason"], "length");
    assert_eq!(key_paths(&ours[7]), key_paths(&real[7]), "usage chunk");
    assert_eq!(
        ours[7]["usage"],
        json!({"prompt_tokens": 11, "total_tokens": 17, "completion_tokens": 6})
    );
    assert!(ours[0]["id"].as_str().expect("id").starts_with("chatcmpl-"));

    let (_, _, body) = post(&url, &chat_body(4, json!({"include_usage": false}))).await;
    let ours = sse_json_done(&body);
    let real = sse_json_done(&fixture!("chat_stream_no_usage.sse"));
    assert_eq!(ours.len(), real.len());
    for (o, r) in ours.iter().zip(&real) {
        assert_eq!(key_paths(o), key_paths(r));
    }

    let options = json!({"include_usage": true, "continuous_usage_stats": true});
    let (_, _, body) = post(&url, &chat_body(4, options)).await;
    let ours = sse_json_done(&body);
    let real = sse_json_done(&fixture!("chat_stream_continuous_usage.sse"));
    assert_eq!(ours.len(), real.len());
    for (i, (o, r)) in ours.iter().zip(&real).enumerate() {
        assert_eq!(key_paths(o), key_paths(r), "event {i}");
        assert_eq!(
            o["usage"], r["usage"],
            "event {i}: same prompt, same counts"
        );
    }
}

#[tokio::test]
async fn non_streaming_bodies_have_the_real_keys() {
    let sim = sim().await;
    let base = sim.base_url();
    let body = json!({"model": "candidate", "prompt": "The license says", "max_tokens": 16});
    let (status, ctype, text) = post(&format!("{base}/v1/completions"), &body).await;
    assert_eq!((status, ctype.as_str()), (200, "application/json"));
    let ours: Value = serde_json::from_str(&text).expect("json");
    let real = fixture_json!("completions_nonstream.txt");
    assert_eq!(key_paths(&ours), key_paths(&real));
    assert_eq!(ours["usage"]["completion_tokens"], 16);
    assert_eq!(ours["choices"][0]["finish_reason"], "length");

    let body = json!({"model": "tiny-base", "messages": [{"role": "user", "content": "Hello there"}],
                      "max_tokens": 16});
    let (status, _, text) = post(&format!("{base}/v1/chat/completions"), &body).await;
    assert_eq!(status, 200);
    let ours: Value = serde_json::from_str(&text).expect("json");
    let real = fixture_json!("chat_nonstream.txt");
    assert_eq!(key_paths(&ours), key_paths(&real));
    assert_eq!(ours["model"], "tiny-base");
    assert_eq!(
        ours["usage"], real["usage"],
        "same prompt, same token counts"
    );
}

#[tokio::test]
async fn errors_have_the_real_bodies() {
    let sim = sim().await;
    let base = sim.base_url();
    let real_404 = fixture_json!("error_missing_model.txt");
    for (path, body) in [
        (
            "v1/completions",
            json!({"model": "nope", "prompt": "x", "max_tokens": 4}),
        ),
        (
            "v1/chat/completions",
            json!({"model": "nope", "messages": [], "stream": true}),
        ),
    ] {
        let (status, ctype, text) = post(&format!("{base}/{path}"), &body).await;
        assert_eq!(
            (status, ctype.as_str()),
            (404, "application/json"),
            "{path}"
        );
        let ours: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(ours, real_404, "{path}");
    }

    let body = json!({"model": "candidate", "prompt": "x", "max_tokens": 5000});
    let (status, _, text) = post(&format!("{base}/v1/completions"), &body).await;
    assert_eq!(status, 400);
    let ours: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(ours, fixture_json!("error_too_long.txt"));

    let resp = client()
        .post(format!("{base}/v1/completions"))
        .header("content-type", "application/json")
        .body(r#"{"model": }"#)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 400);
    let ours: Value = resp.json().await.expect("json");
    let real = fixture_json!("error_bad_json.txt");
    assert_eq!(key_paths(&ours), key_paths(&real));
    assert_eq!(ours["error"]["type"], real["error"]["type"]);
    assert_eq!(ours["error"]["param"], "body.10");
    assert_eq!(ours["error"]["code"], 400);
}

#[tokio::test]
async fn error_rate_one_gives_500s_and_leaves_engine_metrics_alone() {
    let sim = sim_with(SimConfig {
        error_rate: 1.0,
        ..Default::default()
    })
    .await;
    let base = sim.base_url();
    for stream in [false, true] {
        let body = json!({"model": "candidate", "prompt": "hi", "max_tokens": 4, "stream": stream});
        let (status, ctype, text) = post(&format!("{base}/v1/completions"), &body).await;
        assert_eq!((status, ctype.as_str()), (500, "application/json"));
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["error"]["code"], 500);
        assert_eq!(v["error"]["type"], "InternalServerError");
        assert!(v["error"]["message"].is_string());
    }
    let samples = parse_metrics(&get_text(&format!("{base}/metrics")).await);
    assert_eq!(
        value(&samples, "vllm:e2e_request_latency_seconds_count", &[]),
        Some(0.0)
    );
    assert_eq!(value(&samples, "vllm:prompt_tokens_total", &[]), Some(0.0));
    let five = [("handler", "/v1/completions"), ("status", "5xx")];
    assert_eq!(value(&samples, "http_requests_total", &five), Some(2.0));
    assert_eq!(sim.stats().injected_errors, 2);
}

#[tokio::test]
async fn cut_rate_one_ends_streams_without_done() {
    let sim = sim_with(SimConfig {
        cut_rate: 1.0,
        ..Default::default()
    })
    .await;
    let base = sim.base_url();
    for _ in 0..5 {
        let (status, _, body) = post(
            &format!("{base}/v1/completions"),
            &completion_body(10, true),
        )
        .await;
        assert_eq!(status, 200);
        let payloads = sse_payloads(&body);
        assert!(!payloads.iter().any(|p| p == "[DONE]"), "no [DONE]: {body}");
        assert!(
            (1..10).contains(&payloads.len()),
            "cut mid-stream: {} chunks",
            payloads.len()
        );
        for p in &payloads {
            let v: Value = serde_json::from_str(p).expect("json");
            assert_eq!(v["choices"][0]["finish_reason"], Value::Null);
        }
    }
    // Non-streaming requests are not cut.
    let body = json!({"model": "candidate", "prompt": "hi", "max_tokens": 4});
    let (status, _, _) = post(&format!("{base}/v1/completions"), &body).await;
    assert_eq!(status, 200);

    let samples = parse_metrics(&get_text(&format!("{base}/metrics")).await);
    let reason = |r| {
        value(
            &samples,
            "vllm:request_success_total",
            &[("finished_reason", r)],
        )
    };
    assert_eq!(reason("abort"), Some(5.0));
    assert_eq!(reason("length"), Some(1.0));
    assert_eq!(
        value(&samples, "vllm:e2e_request_latency_seconds_count", &[]),
        Some(6.0),
        "a server-side cut is observed like any finished request"
    );
    assert_eq!(sim.stats().cut_streams, 5);
}

#[tokio::test]
async fn reset_mode_breaks_the_body() {
    let sim = sim_with(SimConfig {
        cut_rate: 1.0,
        cut_mode: vllm_sim::CutMode::Reset,
        ..Default::default()
    })
    .await;
    let resp = client()
        .post(format!("{}/v1/completions", sim.base_url()))
        .json(&completion_body(10, false))
        .send()
        .await
        .expect("headers arrive");
    assert_eq!(resp.status(), 200);
    assert!(
        resp.text().await.is_err(),
        "the body must fail, not end cleanly"
    );
}

#[tokio::test]
async fn stop_probability_one_stops_after_one_token() {
    let sim = sim_with(SimConfig {
        stop_probability: 1.0,
        ..Default::default()
    })
    .await;
    let base = sim.base_url();
    let (_, _, body) = post(
        &format!("{base}/v1/completions"),
        &completion_body(10, true),
    )
    .await;
    let ours = sse_json_done(&body);
    assert_eq!(ours.len(), 2);
    assert_eq!(ours[0]["choices"][0]["finish_reason"], "stop");
    assert_eq!(ours[1]["usage"]["completion_tokens"], 1);
    // ignore_eos wins, as in vLLM.
    let body = json!({"prompt": "x", "max_tokens": 5, "ignore_eos": true});
    let (_, _, text) = post(&format!("{base}/v1/completions"), &body).await;
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["usage"]["completion_tokens"], 5);
    let samples = parse_metrics(&get_text(&format!("{base}/metrics")).await);
    let reason = |r| {
        value(
            &samples,
            "vllm:request_success_total",
            &[("finished_reason", r)],
        )
    };
    assert_eq!((reason("stop"), reason("length")), (Some(1.0), Some(1.0)));
}

#[tokio::test]
async fn same_seed_same_text() {
    let text = |seed| async move {
        let sim = sim_with(SimConfig {
            seed,
            ..Default::default()
        })
        .await;
        let body = json!({"prompt": "x", "max_tokens": 12});
        let (_, _, text) = post(&format!("{}/v1/completions", sim.base_url()), &body).await;
        let v: Value = serde_json::from_str(&text).expect("json");
        v["choices"][0]["text"].as_str().expect("text").to_owned()
    };
    assert_eq!(text(1).await, text(1).await);
    assert_ne!(text(1).await, text(2).await);
}

#[tokio::test]
async fn client_disconnect_frees_the_slot_and_counts_nothing() {
    let sim = spawn(SimConfig {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(50),
        ..Default::default()
    })
    .await
    .expect("sim");
    let base = sim.base_url();
    let mut resp = client()
        .post(format!("{base}/v1/completions"))
        .json(&completion_body(100, true))
        .send()
        .await
        .expect("send");
    let first = resp.chunk().await.expect("chunk").expect("some data");
    assert!(first.starts_with(b"data: "));
    let running = |text: &str| value(&parse_metrics(text), "vllm:num_requests_running", &[]);
    assert_eq!(
        running(&get_text(&format!("{base}/metrics")).await),
        Some(1.0)
    );
    drop(resp);
    let mut freed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if running(&get_text(&format!("{base}/metrics")).await) == Some(0.0) {
            freed = true;
            break;
        }
    }
    assert!(
        freed,
        "the running slot is released when the client goes away"
    );
    let samples = parse_metrics(&get_text(&format!("{base}/metrics")).await);
    assert_eq!(
        value(&samples, "vllm:e2e_request_latency_seconds_count", &[]),
        Some(0.0)
    );
    assert_eq!(value(&samples, "vllm:kv_cache_usage_perc", &[]), Some(0.0));
    assert_eq!(sim.stats().disconnected, 1);
}

/// `/tokenize` counts a prompt as the completions endpoint's usage does (what a client sizing
/// synthetic prompts relies on); off, it is the 404 of a server without the route.
#[tokio::test]
async fn tokenize_counts_as_usage_does_and_can_be_off() {
    let sim = sim().await;
    let prompt = "the quick brown fox jumps over the lazy dog";
    let resp = client()
        .post(format!("{}/tokenize", sim.base_url()))
        .json(&json!({"model": "candidate", "prompt": prompt}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let t: Value = resp.json().await.expect("json");
    let usage: Value = client()
        .post(format!("{}/v1/completions", sim.base_url()))
        .json(&json!({"model": "candidate", "prompt": prompt, "max_tokens": 1}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(t["count"], usage["usage"]["prompt_tokens"]);
    assert_eq!(
        t["tokens"].as_array().expect("ids").len() as u64,
        t["count"].as_u64().unwrap()
    );
    assert_eq!(t["max_model_len"], 1024);
    let chat: Value = client()
        .post(format!("{}/tokenize", sim.base_url()))
        .json(&json!({"messages": [{"role": "user", "content": "Hello there"}]}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(chat["count"], 11);
    let unknown = client()
        .post(format!("{}/tokenize", sim.base_url()))
        .json(&json!({"model": "nope", "prompt": "x"}))
        .send()
        .await
        .expect("send");
    assert_eq!(unknown.status(), 404);

    let off = sim_with(SimConfig {
        tokenize: false,
        ..SimConfig::default()
    })
    .await;
    let resp = client()
        .post(format!("{}/tokenize", off.base_url()))
        .json(&json!({"prompt": prompt}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.text().await.expect("body"),
        "{\"detail\":\"Not Found\"}"
    );
}
