//! What a whole `load-test` run holds per request, counted by the allocator (issue 13: memory
//! flat with the run's length). The step runs in this process, from its real command line,
//! against a zero-delay `vllm-sim` in another process (so only the client is counted): the
//! peak of live heap bytes of a 20,000-request run against a 2,000-request one, results files
//! and reports included. Each request's exact sample is 12 bytes (the gate's nearest-rank
//! percentiles need it); the request list, the packed samples and the results' copies used to
//! add ~80 more.

use clap::Parser as _;
use load_test::cli::Cli;
use perf_gate::loadtest::LoadTestConfig;
use test_support::alloc;
use test_support::sim::SimProcess;
use test_support::steps::bin;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

/// Peak live heap bytes above the start of one in-process run of `requests` requests.
fn peak_of_run(sim: &SimProcess, dir: &std::path::Path, requests: u64) -> isize {
    let out = dir.join(format!("run-{requests}"));
    let cli = Cli::try_parse_from([
        "load-test",
        "--vllm-url",
        &sim.url(),
        "--adapter-name",
        "candidate",
        "--prompt-text",
        "Say something.",
        "--max-tokens",
        "8",
        "--ignore-eos",
        "--concurrency",
        "32",
        "--num-requests",
        &requests.to_string(),
        "--progress-interval",
        "0",
        "--poll-interval",
        "0",
        "--output-dir",
        out.to_str().unwrap(),
    ])
    .unwrap();
    let cfg = LoadTestConfig::try_from(cli).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let base = alloc::live();
    alloc::reset_peak();
    let outcome = rt
        .block_on(perf_gate::loadtest::run(
            cfg,
            tokio_util::sync::CancellationToken::new(),
        ))
        .unwrap();
    let peak = alloc::peak() - base;
    drop(rt);
    let client = outcome.results.client.expect("the run has client figures");
    assert_eq!(client.total_requests, requests);
    assert_eq!(client.successful_requests, requests);
    peak
}

#[test]
fn a_run_holds_a_few_bytes_a_request_not_its_request_list_or_copies_of_its_samples() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(
        &bin("vllm-sim"),
        test_support::free_port(),
        &[
            "--ttft".into(),
            "0ms".into(),
            "--itl".into(),
            "0ms".into(),
            "--max-num-seqs".into(),
            "256".into(),
        ],
        &dir.path().join("sim.log"),
    );
    // a first run warms what is allocated once (the runtime's and TLS's statics); each size
    // the lower of two runs, so records queued behind a stalled aggregator on a busy machine
    // (the channel is unbounded) do not count as held
    peak_of_run(&sim, dir.path(), 200);
    let short = (0..2)
        .map(|_| peak_of_run(&sim, dir.path(), 2_000))
        .min()
        .unwrap();
    let long = (0..2)
        .map(|_| peak_of_run(&sim, dir.path(), 20_000))
        .min()
        .unwrap();
    let per_request = (long - short) as f64 / 18_000.0;
    println!(
        "peak live heap: {short} B at 2,000 requests, {long} B at 20,000: {per_request:.1} B a request"
    );
    // 12 bytes of exact sample, the store's doubling, and the percentiles' sorted copy (4);
    // the old request list alone was 40
    assert!(
        per_request < 32.0,
        "{per_request:.1} bytes a request ({short} B at 2,000, {long} B at 20,000)"
    );
}
