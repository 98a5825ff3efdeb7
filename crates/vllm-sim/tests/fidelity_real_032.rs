//! The simulator against a capture of a REAL vLLM 0.32 (`tests/fixtures/real-0.32/`, made by
//! `scripts/vllm/capture-samples.sh`, re-captured by `scripts/e2e.sh --backend vllm` with
//! `E2E_CAPTURE_DIR`): every request of the capture's manifest is replayed against the sim, and
//! status, content type, JSON key paths, SSE framing and chunk shapes, and the metric families
//! (type and label keys) must match. If vLLM changes, re-capture and this test says what drifted.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use test_support::fixture;
use test_support::wire::*;

const DIR: &str = "real-0.32";

fn real(name: &str) -> String {
    fixture!(&format!("{DIR}/{name}"))
}

fn manifest() -> Vec<Value> {
    let m: Value = serde_json::from_str(&real("manifest.json")).expect("manifest");
    m["files"].as_array().expect("files").clone()
}

async fn sim() -> vllm_sim::SimHandle {
    vllm_sim::spawn(vllm_sim::SimConfig {
        ttft: std::time::Duration::from_millis(1),
        itl: std::time::Duration::from_millis(1),
        ..Default::default()
    })
    .await
    .expect("sim")
}

/// Key paths of each kind of SSE chunk: first, content, last content, usage.
fn chunk_shapes(events: &[Value]) -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    let content: Vec<&Value> = events
        .iter()
        .filter(|e| e["choices"].as_array().is_some_and(|c| !c.is_empty()))
        .collect();
    if let Some(first) = content.first() {
        out.insert("first", key_paths(first));
    }
    if content.len() > 2 {
        out.insert("middle", key_paths(content[content.len() / 2]));
    }
    if let Some(last) = content.last() {
        out.insert("last", key_paths(last));
    }
    if let Some(usage) = events
        .iter()
        .find(|e| e.get("usage").is_some_and(|u| !u.is_null()))
    {
        out.insert("usage", key_paths(usage));
    }
    out
}

#[tokio::test]
async fn every_captured_request_gets_the_same_shape_from_the_sim() {
    let sim = sim().await;
    let mut checked = 0;
    for entry in manifest() {
        let file = entry["file"].as_str().unwrap();
        let path = entry["path"].as_str().unwrap();
        let url = format!("{}{path}", sim.base_url());
        let (status, ctype, body) = match entry["method"].as_str().unwrap() {
            "POST" => post(&url, &entry["request"]).await,
            _ => {
                let resp = client().get(&url).send().await.expect("send");
                let status = resp.status().as_u16();
                let ctype = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                (status, ctype, resp.text().await.expect("body"))
            }
        };
        assert_eq!(
            u64::from(status),
            entry["status"].as_u64().unwrap(),
            "{file}: status"
        );
        if let Some(want) = entry["content_type"].as_str() {
            assert_eq!(ctype, want, "{file}: content-type");
        }
        let captured = real(file);
        if path == "/metrics" {
            continue; // families compared below
        }
        if file.ends_with(".sse") {
            let (ours, theirs) = (sse_json_done(&body), sse_json_done(&captured));
            assert_eq!(
                chunk_shapes(&ours),
                chunk_shapes(&theirs),
                "{file}: chunk shapes"
            );
            let tokens = |evs: &[Value]| {
                evs.iter()
                    .filter(|e| e["choices"].as_array().is_some_and(|c| !c.is_empty()))
                    .count()
            };
            assert_eq!(
                tokens(&ours),
                tokens(&theirs),
                "{file}: one chunk per token"
            );
        } else if file.ends_with(".json") && path != "/version" {
            let (ours, theirs): (Value, Value) = (
                serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("{file}: sim body {e}: {body}")),
                serde_json::from_str(&captured).expect("captured JSON"),
            );
            assert_eq!(key_paths(&ours), key_paths(&theirs), "{file}: key paths");
        }
        checked += 1;
    }
    assert!(
        checked >= 10,
        "the manifest lists the captured requests ({checked})"
    );
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn metric_families_the_gate_reads_match_the_real_server() {
    let sim = sim().await;
    // Serve a request so every family that appears after traffic exists.
    let (status, _, _) = post(
        &format!("{}/v1/completions", sim.base_url()),
        &serde_json::json!({"model": "candidate", "prompt": "x", "max_tokens": 4, "stream": false}),
    )
    .await;
    assert_eq!(status, 200);
    let ours_text = get_text(&format!("{}/metrics", sim.base_url())).await;
    let theirs_text = real("metrics_after.txt");
    let (ours_types, theirs_types) = (metric_types(&ours_text), metric_types(&theirs_text));
    let shapes = |text: &str,
                  types: &BTreeMap<String, String>,
                  family: &str|
     -> BTreeSet<(String, Vec<String>)> {
        parse_metrics(text)
            .into_iter()
            .filter(|s| family_of(&s.name, types) == Some(family))
            .map(|s| (s.name, s.labels.into_keys().collect()))
            .collect()
    };
    for family in [
        "vllm:e2e_request_latency_seconds",
        "vllm:time_to_first_token_seconds",
        "vllm:inter_token_latency_seconds",
        "vllm:request_time_per_output_token_seconds",
        "vllm:request_queue_time_seconds",
        "vllm:request_success_total",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:lora_requests_info",
    ] {
        let (ours, theirs) = (ours_types.get(family), theirs_types.get(family));
        assert!(theirs.is_some(), "the real capture has {family}");
        assert_eq!(ours, theirs, "{family}: type");
        let (o, t) = (
            shapes(&ours_text, &ours_types, family),
            shapes(&theirs_text, &theirs_types, family),
        );
        // Same sample names and label keys (values and label values differ).
        let names = |s: &BTreeSet<(String, Vec<String>)>| {
            s.iter()
                .map(|(n, k)| format!("{n}{k:?}"))
                .collect::<BTreeSet<_>>()
        };
        let real_names: BTreeSet<String> = names(&t)
            .into_iter()
            .filter(|n| !n.contains("_created"))
            .collect();
        assert_eq!(names(&o), real_names, "{family}: series");
    }
    // Bucket bounds of the histograms the gate queries.
    let (ours, theirs) = (parse_metrics(&ours_text), parse_metrics(&theirs_text));
    for family in [
        "vllm:e2e_request_latency_seconds",
        "vllm:time_to_first_token_seconds",
        "vllm:inter_token_latency_seconds",
    ] {
        assert_eq!(
            bucket_bounds(&ours, family),
            bucket_bounds(&theirs, family),
            "{family}: buckets"
        );
    }
    sim.shutdown().await.unwrap();
}
