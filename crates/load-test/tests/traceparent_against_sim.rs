//! The W3C `traceparent` on the wire against `vllm-sim`: each generation request carries a
//! valid, unique one, the simulator records what it received, and `requests.jsonl` records the
//! same value per request; `--traceparent false` sends and records none.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use perf_gate::client::trace::is_valid;
use serde_json::Value;
use test_support::sim::Sim;
use test_support::steps::{load_test_against, stderr};

fn sim() -> Sim {
    Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(1),
        ..Default::default()
    })
}

/// Runs `load-test` against `sim` with `args`; returns the output directory's request records.
fn records(sim: &Sim, dir: &Path, args: &[&str]) -> (PathBuf, Vec<Value>) {
    let common = [
        "--poll-interval",
        "0",
        "--max-tokens",
        "4",
        "--concurrency",
        "4",
    ];
    let run = load_test_against(&sim.url, dir, 10, &[&common[..], args].concat());
    assert!(run.output.status.success(), "{}", stderr(&run.output));
    (run.out, run.records)
}

#[test]
fn every_request_carries_a_unique_traceparent_that_the_server_saw_and_the_record_keeps() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let (_, recs) = records(
        &sim,
        dir.path(),
        &["--num-requests", "30", "--warmup-requests", "2"],
    );
    assert_eq!(recs.len(), 30);
    let seen = sim.traceparents();
    // the warm-up's requests are traced too, each with its own trace
    assert_eq!(seen.len(), 32, "{seen:?}");
    let on_wire: HashSet<&str> = seen.iter().map(String::as_str).collect();
    assert_eq!(on_wire.len(), seen.len(), "unique per request: {seen:?}");
    let traces: HashSet<&str> = seen.iter().map(|t| &t[3..35]).collect();
    assert_eq!(traces.len(), seen.len(), "a fresh trace id each: {seen:?}");
    for r in &recs {
        let t = r["traceparent"]
            .as_str()
            .unwrap_or_else(|| panic!("traceparent in {r}"));
        assert!(is_valid(t), "{t}");
        assert!(t.starts_with("00-") && t.ends_with("-01"), "sampled: {t}");
        assert!(on_wire.contains(t), "{t} was not received by the server");
    }
}

#[test]
fn traceparent_false_sends_and_records_none() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let (_, recs) = records(
        &sim,
        dir.path(),
        &["--num-requests", "8", "--traceparent", "false"],
    );
    assert_eq!(recs.len(), 8);
    assert!(
        recs.iter().all(|r| r.get("traceparent").is_none()),
        "{recs:?}"
    );
    assert_eq!(sim.traceparents(), Vec::<String>::new());
    assert_eq!(sim.stats().accepted, 8);
}
