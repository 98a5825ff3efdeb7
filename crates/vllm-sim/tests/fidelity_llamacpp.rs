//! `vllm-sim --api llamacpp` against a capture of a REAL llama.cpp `llama-server`
//! (`tests/fixtures/llamacpp/`, made by `scripts/llamacpp/capture-samples.sh` from the server
//! `scripts/llamacpp/setup.sh` builds out of PyPI's llama-cpp-python sdist, serving the tiny
//! Llama converted to GGUF). The same requests to the sim must give the same framing (one
//! `data:` line per event, no `[DONE]`), one `"stop": false` event per token, and the same
//! top-level keys in the token events, the `"stop": true` event and its `timings`, the
//! non-stream body, `/health` and `/v1/models`. (`generation_settings` is llama.cpp's echo of
//! every sampling knob: present in both, its contents not reproduced.)

use std::collections::BTreeSet;

use serde_json::{Value, json};
use test_support::fixture;
use test_support::wire::*;

fn real(name: &str) -> String {
    fixture!(&format!("llamacpp/{name}"))
}

async fn sim() -> vllm_sim::SimHandle {
    vllm_sim::spawn(vllm_sim::SimConfig {
        api: vllm_sim::SimApi::Llamacpp,
        served_model_name: "tiny-llama".into(),
        ttft: std::time::Duration::from_millis(1),
        itl: std::time::Duration::from_millis(1),
        ..Default::default()
    })
    .await
    .expect("sim")
}

/// The JSON events of a llama.cpp stream (no sentinel: every event is JSON).
fn events(body: &str) -> Vec<Value> {
    sse_payloads(body)
        .iter()
        .map(|p| serde_json::from_str(p).unwrap_or_else(|e| panic!("{e}: {p}")))
        .collect()
}

fn top_keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

/// The stream's token events and its last event, checked for llama.cpp's order: every event
/// but the last says `"stop": false`, the last `"stop": true`.
fn split(evs: &[Value]) -> (&[Value], &Value) {
    let (last, tokens) = evs.split_last().expect("events");
    assert_eq!(last["stop"], true, "the last event stops: {last}");
    assert!(tokens.iter().all(|e| e["stop"] == false), "{tokens:?}");
    (tokens, last)
}

const REQUEST: &str = r#"{"prompt":"The quick brown fox","n_predict":8,"temperature":0,"stream":true,"model":"tiny-llama"}"#;

#[tokio::test]
async fn the_stream_has_the_real_server_s_framing_events_and_keys() {
    let sim = sim().await;
    let request: Value = serde_json::from_str(REQUEST).unwrap();
    let (status, ctype, body) = post(&format!("{}/completion", sim.base_url()), &request).await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/event-stream"), "{ctype}");
    assert!(!body.contains("[DONE]"), "llama.cpp sends no sentinel");
    let (ours, theirs) = (events(&body), events(&real("completion_stream.sse")));
    let ((our_tokens, our_last), (their_tokens, their_last)) = (split(&ours), split(&theirs));
    assert_eq!(our_tokens.len(), 8, "one event per token of n_predict");
    assert_eq!(our_tokens.len(), their_tokens.len());
    for (o, t) in our_tokens.iter().zip(their_tokens) {
        assert_eq!(top_keys(o), top_keys(t), "token event keys");
    }
    assert_eq!(top_keys(our_last), top_keys(their_last), "last event keys");
    assert_eq!(
        top_keys(&our_last["timings"]),
        top_keys(&their_last["timings"]),
        "timings keys"
    );
    for key in [
        "tokens_predicted",
        "tokens_evaluated",
        "stop_type",
        "content",
    ] {
        assert_eq!(
            our_last[key].is_number(),
            their_last[key].is_number(),
            "{key}"
        );
    }
    assert_eq!(our_last["tokens_predicted"], their_last["tokens_predicted"]);
    assert_eq!(
        our_last["stop_type"], their_last["stop_type"],
        "n_predict reached: limit"
    );
    assert_eq!(our_last["model"], their_last["model"], "the alias");
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_non_stream_body_health_and_model_list_match_the_real_server() {
    let sim = sim().await;
    let base = sim.base_url();
    let mut request: Value = serde_json::from_str(REQUEST).unwrap();
    request["stream"] = json!(false);
    let (status, _, body) = post(&format!("{base}/completion"), &request).await;
    assert_eq!(status, 200);
    let ours: Value = serde_json::from_str(&body).unwrap();
    let theirs: Value = serde_json::from_str(&real("completion_nonstream.json")).unwrap();
    assert_eq!(top_keys(&ours), top_keys(&theirs));
    assert_eq!(ours["stop"], true);
    assert!(!ours["content"].as_str().unwrap().is_empty());

    let health = get_text(&format!("{base}/health")).await;
    assert_eq!(
        serde_json::from_str::<Value>(&health).unwrap(),
        serde_json::from_str::<Value>(&real("health.json")).unwrap()
    );
    let ours: Value = serde_json::from_str(&get_text(&format!("{base}/v1/models")).await).unwrap();
    let theirs: Value = serde_json::from_str(&real("models.json")).unwrap();
    assert_eq!(top_keys(&ours), top_keys(&theirs));
    assert_eq!(top_keys(&ours["data"][0]), top_keys(&theirs["data"][0]));
    assert_eq!(
        ours["data"][0]["id"], theirs["data"][0]["id"],
        "the alias is the id"
    );
    assert_eq!(ours["data"][0]["owned_by"], "llamacpp");
    // both list the LoRA adapters as a JSON array (the capture's server loaded none)
    let loras: Value =
        serde_json::from_str(&get_text(&format!("{base}/lora-adapters")).await).unwrap();
    assert!(loras.is_array() && real("lora_adapters.json").trim() == "[]");
    assert_eq!(loras[0]["id"], 0);
    assert_eq!(loras[0]["scale"], 1.0);
    sim.shutdown().await.unwrap();
}
