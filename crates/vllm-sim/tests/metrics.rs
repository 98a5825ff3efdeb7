//! `/metrics` against the real vLLM capture: names, labels, help texts, buckets, counts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::json;
use test_support::fixture;
use test_support::wire::*;
use vllm_sim::{SimConfig, SimHandle, spawn};

async fn sim() -> SimHandle {
    spawn(SimConfig {
        ttft: Duration::from_millis(2),
        itl: Duration::from_millis(1),
        ..Default::default()
    })
    .await
    .expect("sim starts")
}

async fn metrics_text(sim: &SimHandle) -> String {
    let resp = client()
        .get(format!("{}/metrics", sim.base_url()))
        .send()
        .await
        .expect("scrape");
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(
        ctype, "text/plain; version=1.0.0; charset=utf-8",
        "as the real capture"
    );
    resp.text().await.expect("body")
}

/// (sample name, label names) of every series of the given families.
fn series_shapes(text: &str, keep: &BTreeSet<String>) -> BTreeSet<(String, Vec<String>)> {
    let families = metric_types(text);
    parse_metrics(text)
        .into_iter()
        .filter(|s| family_of(&s.name, &families).is_some_and(|f| keep.contains(f)))
        .map(|s| (s.name, s.labels.into_keys().collect()))
        .collect()
}

#[tokio::test]
async fn fresh_metrics_exist_at_zero_without_lora_info() {
    let sim = sim().await;
    let text = metrics_text(&sim).await;
    let samples = parse_metrics(&text);
    for reason in ["stop", "length", "abort", "error", "repetition"] {
        let v = value(
            &samples,
            "vllm:request_success_total",
            &[("finished_reason", reason)],
        );
        assert_eq!(v, Some(0.0), "{reason} pre-created at 0");
    }
    assert_eq!(
        value(&samples, "vllm:e2e_request_latency_seconds_count", &[]),
        Some(0.0)
    );
    assert!(!text.contains("vllm:lora_requests_info"));
    // The real fresh server has no lora info either.
    assert!(!fixture!("metrics_fresh_before_requests.txt").contains("vllm:lora_requests_info{"));
}

#[tokio::test]
async fn metrics_after_k_requests_match_the_real_capture() {
    let sim = sim().await;
    let base = sim.base_url();
    let k = 5;
    for i in 0..k {
        let model = if i % 2 == 0 { "candidate" } else { "tiny-base" };
        let body = json!({"model": model, "prompt": "The license says", "max_tokens": 8,
                          "stream": i % 3 == 0, "stream_options": {"include_usage": true}});
        let (status, _, _) = post(&format!("{base}/v1/completions"), &body).await;
        assert_eq!(status, 200);
    }
    let bad = json!({"model": "nope", "prompt": "x"});
    assert_eq!(post(&format!("{base}/v1/completions"), &bad).await.0, 404);

    let text = metrics_text(&sim).await;
    let samples = parse_metrics(&text);
    let real_text = fixture!("metrics_after_load.txt");
    let real = parse_metrics(&real_text);

    // Counts.
    let kf = f64::from(k);
    for h in [
        "vllm:e2e_request_latency_seconds",
        "vllm:time_to_first_token_seconds",
        "vllm:request_time_per_output_token_seconds",
        "vllm:request_queue_time_seconds",
    ] {
        assert_eq!(value(&samples, &format!("{h}_count"), &[]), Some(kf), "{h}");
        let inf = value(&samples, &format!("{h}_bucket"), &[("le", "+Inf")]);
        assert_eq!(inf, Some(kf), "{h} +Inf bucket");
    }
    let itl = value(&samples, "vllm:inter_token_latency_seconds_count", &[]);
    assert_eq!(
        itl,
        Some(kf * 7.0),
        "one ITL per gap: 7 per 8-token request"
    );
    let reason = |r| {
        value(
            &samples,
            "vllm:request_success_total",
            &[("finished_reason", r)],
        )
    };
    assert_eq!(reason("length"), Some(kf));
    assert_eq!(reason("stop"), Some(0.0));
    assert_eq!(
        value(&samples, "vllm:generation_tokens_total", &[]),
        Some(kf * 8.0)
    );
    assert_eq!(
        value(&samples, "vllm:prompt_tokens_total", &[]),
        Some(kf * 5.0)
    );
    assert_eq!(value(&samples, "vllm:num_requests_running", &[]), Some(0.0));
    // Adapter requests count under the base model name; no adapter label anywhere.
    assert!(
        samples
            .iter()
            .filter(|s| s.name.starts_with("vllm:") && s.name != "vllm:lora_requests_info")
            .all(
                |s| s.labels.get("model_name").map(String::as_str) == Some("tiny-base")
                    && s.labels.get("engine").map(String::as_str) == Some("0")
            )
    );
    let lora = samples
        .iter()
        .filter(|s| s.name == "vllm:lora_requests_info")
        .collect::<Vec<_>>();
    assert!(
        lora.iter()
            .any(|s| s.labels["running_lora_adapters"] == "candidate")
    );
    assert!(
        lora.iter()
            .all(|s| s.labels["max_lora"] == "1" && s.value > 1.7e9)
    );
    let http = [("handler", "/v1/completions"), ("method", "POST")];
    let with_status = |s| [http[0], http[1], ("status", s)];
    assert_eq!(
        value(&samples, "http_requests_total", &with_status("2xx")),
        Some(kf)
    );
    assert_eq!(
        value(&samples, "http_requests_total", &with_status("4xx")),
        Some(1.0)
    );

    // Every family we emit exists in the real capture with the same type and help text,
    // and the same series names and label names.
    let ours_types = metric_types(&text);
    let real_types = metric_types(&real_text);
    let ours_help = metric_helps(&text);
    let real_help = metric_helps(&real_text);
    for (family, kind) in &ours_types {
        assert_eq!(real_types.get(family), Some(kind), "type of {family}");
        assert_eq!(
            real_help.get(family),
            ours_help.get(family),
            "help of {family}"
        );
    }
    let families: BTreeSet<String> = ours_types.keys().cloned().collect();
    assert!(families.len() >= 20, "{families:?}");
    assert_eq!(
        series_shapes(&text, &families),
        series_shapes(&real_text, &families)
    );

    // Bucket bounds identical to the real ones, compared as numbers.
    let histograms: Vec<&String> = ours_types
        .iter()
        .filter(|(_, t)| *t == "histogram")
        .map(|(n, _)| n)
        .collect();
    for h in &histograms {
        assert_eq!(
            bucket_bounds(&samples, h),
            bucket_bounds(&real, h),
            "buckets of {h}"
        );
    }
    for h in [
        "vllm:e2e_request_latency_seconds",
        "vllm:time_to_first_token_seconds",
        "vllm:inter_token_latency_seconds",
        "vllm:request_time_per_output_token_seconds",
        "vllm:request_queue_time_seconds",
    ] {
        assert!(histograms.iter().any(|x| *x == h), "{h} emitted");
    }
    // `le` printed as floats, like the real server.
    assert!(text.contains(
        r#"vllm:e2e_request_latency_seconds_bucket{engine="0",le="1.0",model_name="tiny-base"}"#
    ));
}

#[tokio::test]
async fn gpu_util_gauge_is_opt_in() {
    let plain = sim().await;
    assert!(!metrics_text(&plain).await.contains("DCGM_FI_DEV_GPU_UTIL"));
    let sim = spawn(SimConfig {
        gpu_util: true,
        ..Default::default()
    })
    .await
    .expect("sim");
    let samples = parse_metrics(&metrics_text(&sim).await);
    let v = value(
        &samples,
        "DCGM_FI_DEV_GPU_UTIL",
        &[("gpu", "0"), ("UUID", "GPU-sim")],
    );
    assert_eq!(v, Some(0.0), "idle GPU");
    let labels: BTreeMap<_, _> = samples
        .iter()
        .find(|s| s.name == "DCGM_FI_DEV_GPU_UTIL")
        .map(|s| s.labels.clone())
        .expect("series");
    assert!(labels.contains_key("modelName"));
}
