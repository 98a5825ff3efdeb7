//! Results documents built in code, for tests of `perf-decision` and of the library (enable
//! the `fixtures` feature from a dev-dependency): no load-test run needed, every figure known.

use std::collections::BTreeMap;

use crate::results::*;

pub mod report;

/// The figures a test varies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    /// Server P95 E2E latency, seconds (P50 is 75 % of it, P99 110 %; the client's are 5 % higher).
    pub p95_latency: f64,
    /// Server P95 TTFT, seconds (same spread).
    pub p95_ttft: f64,
    /// Server throughput, req/s.
    pub throughput: f64,
    /// Client success rate (of 100 requests).
    pub success_rate: f64,
}

/// Good figures: pass the seed's floors comfortably.
pub const GOOD: Figures = Figures {
    p95_latency: 4.0,
    p95_ttft: 0.5,
    throughput: 5.0,
    success_rate: 1.0,
};

/// The adapter name of [`results`].
pub const ADAPTER: &str = "aws-rag-qa-candidate";

/// Results of a completed run with [`GOOD`] figures for [`ADAPTER`]: server P95 latency 4.0 s,
/// TTFT 0.5 s, 5 req/s; client P95 latency 4.2 s, TTFT 0.525 s, 5 req/s; 100 of 100 requests
/// succeeded; GPU utilisation missing (no DCGM).
pub fn results() -> LoadTestResults {
    results_with(GOOD, ADAPTER)
}

/// A completed results document with these figures for `adapter`. Every rate is its count over
/// the load's duration, as load-test computes them (perf-decision cross-checks them): the load
/// lasts `successes / throughput` seconds (20 s with [`GOOD`]), so the server finished exactly
/// the requests the client saw succeed (a valid measurement).
pub fn results_with(f: Figures, adapter: &str) -> LoadTestResults {
    let q = |b: f64| ServerQuantiles {
        p50: Measured::value(b * 0.75),
        p95: Measured::value(b),
        p99: Measured::value(b * 1.1),
    };
    let dist = |b: f64| Distribution {
        count: 100,
        min: Some(b * 0.5),
        mean: Some(b * 0.75),
        p50: Some(b * 0.75),
        p90: Some(b * 0.95),
        p95: Some(b),
        p99: Some(b * 1.1),
        max: Some(b * 1.2),
        relative_error: None,
    };
    let total = 100u64;
    let ok = (f.success_rate * total as f64).round() as u64;
    // failures count as +Inf: a percentile above the successful share is +Inf
    let adjusted = |b: f64| {
        let at = |q: f64, v: f64| {
            if (ok as f64) < (q * total as f64).ceil() {
                Some(Latency::Inf)
            } else {
                Some(Latency::Finite(v))
            }
        };
        AdjustedPercentiles {
            count: total,
            p50: at(0.5, b * 0.75),
            p95: at(0.95, b),
            p99: at(0.99, b * 1.1),
        }
    };
    let duration = if f.throughput > 0.0 && ok > 0 {
        ok as f64 / f.throughput
    } else {
        20.0
    };
    LoadTestResults {
        schema_version: SCHEMA_VERSION,
        status: RunStatus::Completed,
        error: None,
        tool: ToolInfo::this("load-test"),
        config: RunConfig {
            vllm_url: "http://vllm:8000".into(),
            adapter_name: adapter.into(),
            eval_data_path: "/data/eval.jsonl".into(),
            concurrency: 10,
            max_tokens: 256,
            endpoint: "completions".into(),
            temperature: 0.0,
            prometheus_url: Some("http://prom:9090".into()),
            prometheus_job: "vllm-service".into(),
            scrape_interval_s: Some(30.0),
            scrape_wait_s: None,
            window_mode: WindowMode::EndAnchored,
            gpu_selector: "{gpu=\"0\"}".into(),
            request_timeout_s: 120.0,
            prompt_field: None,
            input_source: None,
            prompt_file: None,
            input_size: None,
            max_tokens_dist: None,
            ignore_eos: false,
            api: crate::api::Api::Openai,
            task_mix: None,
            tokenizer_file: None,
            api_key_set: false,
            rate: None,
            arrival: "constant".into(),
            max_inflight: None,
            seed: 0,
            num_requests: None,
            warmup_requests: 0,
            duration_s: None,
            warmup_s: 0.0,
            cooldown_s: 0.0,
            ramp_up_s: None,
            stages: None,
            steps: None,
            step_duration_s: None,
            think: None,
            scenario: None,
            targets: Vec::new(),
            lora_mix: None,
            base_model_weight: None,
            preconnect: true,
            http_client: None,
            baseline_adapter: None,
            slo: None,
            wait_ready_s: 0.0,
            drain_grace_s: 10.0,
            thresholds: vec![],
        },
        adapter: Some(AdapterInfo {
            name: adapter.into(),
            root: Some(format!("/adapters/{adapter}")),
            parent: Some("mistral-7b".into()),
        }),
        eval_data: Some(EvalDataInfo {
            path: "/data/eval.jsonl".into(),
            digest: "d9a73a27".into(),
            sha256: "d9a73a27".repeat(8),
            rows: 100,
        }),
        inputs: None,
        timing: Some(RunTiming {
            started_at: "2026-01-01T00:00:00Z".into(),
            ready_at: None,
            load_start: "2026-01-01T00:00:01Z".into(),
            load_end: "2026-01-01T00:00:21Z".into(),
            load_duration_s: duration,
            wall_clock_duration_s: 52.5,
        }),
        client: Some(ClientMetrics {
            total_requests: total,
            successful_requests: ok,
            failed_requests: total - ok,
            success_rate: Some(ok as f64 / total as f64),
            errors_by_kind: BTreeMap::new(),
            responses_without_usage: 0,
            zero_usage_with_content: 0,
            output_tokens: 25600,
            prompt_tokens: 5000,
            requests_per_s: Some(ok as f64 / duration),
            output_tokens_per_s: Some(1254.0),
            ttft_s: dist(f.p95_ttft * 1.05),
            itl_s: dist(0.02),
            e2e_s: dist(f.p95_latency * 1.05),
            tpot_s: dist(0.02),
            client_queue_s: Distribution::default(),
            e2e_adjusted_s: adjusted(f.p95_latency * 1.05),
            ttft_adjusted_s: adjusted(f.p95_ttft * 1.05),
            slo_attainment: None,
            samples: None,
        }),
        server: Some(ServerMetrics {
            source: ServerSource::Prometheus,
            window: None,
            e2e_latency_s: q(f.p95_latency),
            ttft_s: q(f.p95_ttft),
            itl_s: q(0.02),
            requests_finished: Measured::value(f.throughput * duration),
            throughput_rps: Measured::value(f.throughput),
            generation_tokens_per_s: Measured::value(1280.0),
            kv_cache_usage_max: Measured::value(0.25),
            kv_cache_usage_avg: Measured::value(0.1),
            gpu_utilization_avg: Measured::missing("no DCGM series matched {gpu=\"0\"}"),
            gpu_utilization_max: Measured::missing("no DCGM series matched {gpu=\"0\"}"),
            queries: vec![],
            resolved_names: BTreeMap::new(),
            warnings: vec![],
            integrity: ServerIntegrity {
                edges_confirmed: true,
                unconfirmed: vec![],
                requests_finished_any: Measured::value(f.throughput * duration),
                counter_resets: Some(0),
                process_restarts: Some(0),
                series_born: 0,
                targets_before: vec!["vllm:8000".into()],
                targets_after: vec!["vllm:8000".into()],
            },
        }),
        load_generator: None,
        schedule: None,
        warmup: None,
        preconnect: None,
        unmeasured: None,
        baseline_arm: None,
        validity: Some(Validity {
            valid: true,
            reasons: vec![],
        }),
        departures: vec!["end-anchored windows".into()],
        warnings: vec![],
        thresholds: vec![],
        steps: vec![],
        probes: vec![],
        mix: None,
        shard: None,
    }
}

/// Client figures of `e2e_s.len()` successful requests with those E2E latencies (TTFT a tenth
/// of each, 10 output tokens each) and `failures` timeouts, over `duration_s`: their
/// distributions and packed samples computed as `load-test` computes them. The requests
/// finish 0.1 s apart from `first_finish_s`, successes first.
pub fn client_of(
    e2e_s: &[f64],
    failures: u64,
    duration_s: f64,
    first_finish_s: f64,
) -> ClientMetrics {
    let mut store = crate::stats::SampleStore::default();
    let mut at = first_finish_s;
    for &e in e2e_s {
        store.push(at, Some(e / 10.0), Some(e));
        at += 0.1;
    }
    for _ in 0..failures {
        store.push(at, None, None);
        at += 0.1;
    }
    let ok = e2e_s.len() as u64;
    let total = ok + failures;
    let mut errors_by_kind = BTreeMap::new();
    if failures > 0 {
        errors_by_kind.insert("timeout".to_string(), failures);
    }
    ClientMetrics {
        total_requests: total,
        successful_requests: ok,
        failed_requests: failures,
        success_rate: (total > 0).then(|| ok as f64 / total as f64),
        errors_by_kind,
        responses_without_usage: 0,
        zero_usage_with_content: 0,
        output_tokens: ok * 10,
        prompt_tokens: ok * 5,
        requests_per_s: Some(ok as f64 / duration_s),
        output_tokens_per_s: Some((ok * 10) as f64 / duration_s),
        ttft_s: store.ttft(),
        itl_s: Distribution::default(),
        e2e_s: store.e2e(),
        tpot_s: Distribution::default(),
        client_queue_s: Distribution::default(),
        e2e_adjusted_s: store.e2e_adjusted(failures),
        ttft_adjusted_s: store.ttft_adjusted(failures),
        slo_attainment: None,
        samples: Some(store.pack()),
    }
}

/// A completed two-step sweep (`--steps 2,8`) of [`results`]'s adapter: step 0 at concurrency 2,
/// 40 successes with E2E 0.1, 0.2, ... 4.0 s over 10 s, with server figures; step 1 at
/// concurrency 8, 57 successes with E2E 0.05, 0.10, ... 2.85 s and 3 timeouts over 10 s,
/// without server figures (its `server_note` says why). The top level pools both steps'
/// requests (100, 3 failed, 20 s) and has no server figures, as a sweep writes it.
pub fn two_step_results() -> LoadTestResults {
    let mut r = results();
    let first: Vec<f64> = (1..=40).map(|i| f64::from(i) * 0.1).collect();
    let second: Vec<f64> = (1..=57).map(|i| f64::from(i) * 0.05).collect();
    let step0 = client_of(&first, 0, 10.0, 0.5);
    let step1 = client_of(&second, 3, 10.0, 10.5);
    let all: Vec<f64> = first.iter().chain(&second).copied().collect();
    let mut pooled = client_of(&all, 3, 20.0, 0.5);
    // the pooled samples keep each request's own finish time
    let mut store = crate::stats::SampleStore::unpack(step0.samples.as_ref().expect("packed"))
        .expect("invariant: just packed");
    store.merge(
        &crate::stats::SampleStore::unpack(step1.samples.as_ref().expect("packed"))
            .expect("invariant: just packed"),
    );
    pooled.samples = Some(store.pack());
    let server = r.server.take();
    r.client = Some(pooled);
    r.config.concurrency = 2;
    r.timing = Some(RunTiming {
        started_at: "2026-01-01T00:00:00Z".into(),
        ready_at: None,
        load_start: "2026-01-01T00:00:01Z".into(),
        load_end: "2026-01-01T00:00:21Z".into(),
        load_duration_s: 20.0,
        wall_clock_duration_s: 60.0,
    });
    r.steps = vec![
        StepResult {
            index: 0,
            concurrency: Some(2),
            rate: None,
            load_start: "2026-01-01T00:00:01Z".into(),
            load_end: "2026-01-01T00:00:11Z".into(),
            duration_s: 10.0,
            client: step0,
            server,
            server_note: None,
            thresholds: vec![],
        },
        StepResult {
            index: 1,
            concurrency: Some(8),
            rate: None,
            load_start: "2026-01-01T00:00:11Z".into(),
            load_end: "2026-01-01T00:00:21Z".into(),
            duration_s: 10.0,
            client: step1,
            server: None,
            server_note: Some("Prometheus did not answer for this step's window".into()),
            thresholds: vec![ThresholdOutcome {
                expression: "error_rate<1%".into(),
                metric: "error_rate".into(),
                op: "<".into(),
                limit: 0.01,
                value: Some(0.05),
                passed: false,
                reason: "0.05 is not < 0.01".into(),
            }],
        },
    ];
    r
}
