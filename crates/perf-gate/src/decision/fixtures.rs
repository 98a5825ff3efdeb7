//! A complete `LoadTestResults` for unit tests, with every figure present.

use std::collections::BTreeMap;

use crate::results::*;

/// Results of a completed run: server p95 latency 4.0 s, TTFT 0.5 s, 5 req/s; client p95
/// latency 4.2 s, TTFT 0.6 s, 4.9 req/s; 100 of 100 requests succeeded.
pub(crate) fn results() -> LoadTestResults {
    let q = |a: f64, b: f64, c: f64| ServerQuantiles {
        p50: Measured::value(a),
        p95: Measured::value(b),
        p99: Measured::value(c),
    };
    let dist = |a: f64, b: f64, c: f64| Distribution {
        count: 100,
        min: Some(a / 2.0),
        mean: Some(a),
        p50: Some(a),
        p90: Some(b),
        p95: Some(b),
        p99: Some(c),
        max: Some(c),
    };
    LoadTestResults {
        schema_version: SCHEMA_VERSION,
        status: RunStatus::Completed,
        error: None,
        tool: ToolInfo::this("load-test"),
        config: RunConfig {
            vllm_url: "http://vllm:8000".into(),
            adapter_name: "aws-rag-qa-candidate".into(),
            eval_data_path: "/data/eval.jsonl".into(),
            concurrency: 10,
            max_tokens: 256,
            endpoint: "completions".into(),
            temperature: 0.0,
            prometheus_url: Some("http://prom:9090".into()),
            prometheus_job: "vllm-service".into(),
            scrape_interval_s: 30.0,
            scrape_wait_s: 20.0,
            window_mode: WindowMode::EndAnchored,
            gpu_selector: "{gpu=\"0\"}".into(),
            request_timeout_s: 120.0,
            prompt_field: None,
            api_key_set: false,
            rate: None,
            num_requests: None,
            warmup_requests: 0,
            wait_ready_s: 0.0,
            drain_grace_s: 10.0,
        },
        adapter: Some(AdapterInfo {
            name: "aws-rag-qa-candidate".into(),
            root: Some("/adapters/v3".into()),
            parent: Some("mistral-7b".into()),
        }),
        eval_data: Some(EvalDataInfo {
            path: "/data/eval.jsonl".into(),
            digest: "d9a73a27".into(),
            sha256: "d9a73a27".repeat(8),
            rows: 100,
        }),
        timing: Some(RunTiming {
            started_at: "2026-01-01T00:00:00Z".into(),
            load_start: "2026-01-01T00:00:01Z".into(),
            load_end: "2026-01-01T00:00:21Z".into(),
            load_duration_s: 20.0,
            wall_clock_duration_s: 52.5,
        }),
        client: Some(ClientMetrics {
            total_requests: 100,
            successful_requests: 100,
            failed_requests: 0,
            success_rate: Some(1.0),
            errors_by_kind: BTreeMap::new(),
            responses_without_usage: 0,
            output_tokens: 25600,
            prompt_tokens: 5000,
            requests_per_s: Some(4.9),
            output_tokens_per_s: Some(1254.0),
            ttft_s: dist(0.3, 0.6, 0.7),
            itl_s: dist(0.01, 0.02, 0.03),
            e2e_s: dist(3.0, 4.2, 4.5),
            tpot_s: dist(0.01, 0.02, 0.03),
            client_queue_s: Distribution::default(),
            e2e_adjusted_s: AdjustedPercentiles::default(),
            ttft_adjusted_s: AdjustedPercentiles::default(),
        }),
        server: Some(ServerMetrics {
            source: ServerSource::Prometheus,
            window: None,
            e2e_latency_s: q(3.0, 4.0, 4.4),
            ttft_s: q(0.2, 0.5, 0.6),
            itl_s: q(0.01, 0.02, 0.03),
            requests_finished: Measured::value(100.0),
            throughput_rps: Measured::value(5.0),
            generation_tokens_per_s: Measured::value(1280.0),
            kv_cache_usage_max: Measured::value(0.25),
            kv_cache_usage_avg: Measured::value(0.1),
            gpu_utilization_avg: Measured::missing("no DCGM series matched {gpu=\"0\"}"),
            gpu_utilization_max: Measured::missing("no DCGM series"),
            queries: vec![],
            resolved_names: BTreeMap::new(),
            warnings: vec![],
        }),
        load_generator: None,
        warmup: None,
        departures: vec!["end-anchored windows".into()],
        warnings: vec![],
    }
}
