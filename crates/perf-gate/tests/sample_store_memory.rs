//! What a run keeps per request, counted by the allocator (not timed, not RSS): 100k requests
//! of 128 tokens each (127 inter-token gaps) must leave a few bytes a request behind, not the
//! ~0.5 KB that keeping every gap cost. The benchmark reports the process's RSS.

use perf_gate::client::RequestRecord;
use perf_gate::runner::aggregate::Tally;
use test_support::alloc;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

fn record(i: u64, ok: bool) -> RequestRecord {
    RequestRecord {
        seq: i,
        prompt_index: (i % 1000) as u32,
        arm: None,
        probe: None,
        step: None,
        phase: Default::default(),
        scheduled_s: i as f64 * 0.001,
        start_s: i as f64 * 0.001 + 0.0001,
        http_status: Some(if ok { 200 } else { 500 }),
        ok,
        error_kind: (!ok).then_some(perf_gate::client::ErrorKind::Http),
        error: None,
        ttft_s: ok.then_some(0.02 + (i % 97) as f64 * 1e-4),
        e2e_s: ok.then_some(0.7 + (i % 89) as f64 * 1e-3),
        total_s: 0.7,
        content_chunks: if ok { 128 } else { 0 },
        output_tokens: ok.then_some(128),
        prompt_tokens: ok.then_some(40),
        finish_reason: ok.then(|| "length".to_string()),
        itl_mean_s: None,
        itl_max_s: None,
        itl_gaps: if ok {
            (0..127).map(|k| 0.005 + (k % 13) as f32 * 1e-4).collect()
        } else {
            Vec::new()
        },
        traceparent: None,
        target: None,
        member: None,
    }
}

#[test]
fn a_request_leaves_a_few_bytes_behind_not_its_token_gaps() {
    const N: u64 = 100_000;
    let mut tally = Tally::default();
    // the first records grow the histograms to their working size
    for i in 0..1000 {
        tally.add(&record(i, true));
    }
    let before = alloc::live();
    for i in 1000..1000 + N {
        tally.add(&record(i, i % 50 != 0));
    }
    let retained = alloc::live() - before;
    let per_request = retained as f64 / N as f64;
    println!("retained {retained} bytes for {N} requests: {per_request:.1} bytes a request");
    // 12 bytes a request, and a Vec that doubles may hold up to twice that: never the 127 gaps
    // (508 bytes) a request kept before
    assert!(per_request <= 30.0, "{per_request:.1} bytes a request");
    // the figures at the end, with every request packed for the results (16 base64 characters
    // a request): sorted copies and the packed text come and go, nothing else a request large
    let at_end = alloc::live();
    alloc::reset_peak();
    let m = tally.metrics(100.0);
    let transient = (alloc::peak() - at_end) as f64 / (1000 + N) as f64;
    println!(
        "computing the figures and packing the samples peaked at {transient:.1} bytes a request more"
    );
    assert!(transient <= 24.0, "{transient:.1} bytes a request");
    assert_eq!(
        m.samples.as_ref().unwrap().data.len() as u64,
        16 * (1000 + N)
    );
    // and every figure is still there
    assert_eq!(m.total_requests, 1000 + N);
    assert_eq!(m.itl_s.count, 127 * (1000 + N - N / 50));
    assert_eq!(tally.requests().len() as u64, 1000 + N);
}
