//! Timed loads end to end against `vllm-sim`: `--duration` (with `--warmup`/`--cooldown`
//! left out of the figures), `--ramp-up`, k6-style `--stages`, and an open loop that keeps
//! its schedule while the server slows and the in-flight count grows.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use test_support::sim::{Sim, eval_file};
use test_support::steps::{
    load_test, load_test_against, load_test_results as results, run, stderr,
};

/// Runs `load-test` against `sim` with `args`; returns (results, every request record).
fn timed(sim: &Sim, dir: &Path, args: &[&str]) -> (Value, Vec<Value>) {
    let run = load_test_against(&sim.url, dir, 20, &[&["--max-tokens", "2"], args].concat());
    assert!(run.output.status.success(), "{}", stderr(&run.output));
    (results(&run.out), run.records)
}

fn sim(ttft: Duration) -> Sim {
    Sim::start(vllm_sim::SimConfig {
        ttft,
        itl: Duration::from_millis(1),
        max_num_seqs: 1024,
        ..Default::default()
    })
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// Requests started before `t` seconds.
fn started_before(records: &[Value], t: f64) -> usize {
    records.iter().filter(|r| f(r, "start_s") < t).count()
}

#[test]
fn a_duration_cycles_the_prompts_and_phases_stay_out_of_the_figures() {
    let sim = sim(Duration::from_millis(40));
    let dir = tempfile::tempdir().unwrap();
    let (r, records) = timed(
        &sim,
        dir.path(),
        &[
            "--concurrency",
            "4",
            "--duration",
            "2s",
            "--warmup",
            "1s",
            "--cooldown",
            "1s",
        ],
    );
    // 20 prompts, ~4 / 0.04 s = ~100 requests a second for 4 s: the list was cycled
    assert!(records.len() > 40, "{} requests", records.len());
    let phase = |r: &Value| r["phase"].as_str().unwrap_or("measured").to_string();
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    for rec in &records {
        let p = phase(rec);
        let at = f(rec, "start_s");
        // a closed loop's request is in the phase of its issue, a moment before its start
        let near_edge = [1.0, 3.0].iter().any(|e| (at - e).abs() < 0.25);
        let want = if near_edge {
            p.as_str()
        } else if at < 1.0 {
            "warmup"
        } else if at < 3.0 {
            "measured"
        } else {
            "cooldown"
        };
        assert_eq!(p, want, "{rec}");
        // nothing issued after warm-up + duration + cool-down
        assert!(at < 4.0 + 0.5, "{rec}");
        *counts.entry(p).or_default() += 1;
    }
    assert!(counts["warmup"] > 0 && counts["cooldown"] > 0, "{counts:?}");
    let c = &r["client"];
    assert_eq!(c["total_requests"], counts["measured"]);
    let u = &r["unmeasured"];
    assert_eq!(u["requests"], counts["warmup"] + counts["cooldown"]);
    assert_eq!(u["warmup_s"], 1.0);
    assert_eq!(u["cooldown_s"], 1.0);
    // rates over the 2 s window
    let rps = f(c, "requests_per_s");
    let want = f(c, "successful_requests") / 2.0;
    assert!((rps - want).abs() < 1e-9, "rps {rps} vs {want}");
    assert_eq!(r["config"]["duration_s"], 2.0);
    assert_eq!(r["config"]["warmup_s"], 1.0);
    // the server's count (its /metrics deltas) covers every request, so no mismatch warning
    let warnings = r["warnings"].to_string();
    assert!(!warnings.contains("server counted"), "{warnings}");
    let server_finished = f(&r["server"]["requests_finished"], "value");
    assert_eq!(server_finished as usize, records.len(), "{}", r["server"]);
    // and the warm-up's and cool-down's requests do not look like other traffic
    assert_eq!(r["validity"]["valid"], true, "{}", r["validity"]);
}

#[test]
fn serial_ramp_up_reaches_full_concurrency_when_it_should() {
    // every request outlasts the run's 2.5 s, so each start is a slot the level opened
    let sim = sim(Duration::from_secs(4));
    let dir = tempfile::tempdir().unwrap();
    let (r, records) = timed(
        &sim,
        dir.path(),
        &[
            "--concurrency",
            "8",
            "--ramp-up",
            "2s",
            "--duration",
            "2500ms",
        ],
    );
    println!(
        "starts: {:?}",
        records.iter().map(|r| f(r, "start_s")).collect::<Vec<_>>()
    );
    assert_eq!(records.len(), 8, "one request per slot, none finished");
    // level 1 + 7 t / 2, rounded: 1 at 0, 3 at 0.5 s, 5 at 1 s, 8 from 2 s
    assert_eq!(started_before(&records, 0.1), 1);
    assert!(started_before(&records, 0.4) <= 3);
    assert!(started_before(&records, 0.9) <= 5);
    // by the ramp's end (and some slack for a loaded machine), all 8
    assert_eq!(started_before(&records, 2.3), 8);
    assert!(started_before(&records, 1.3) >= 4);
    assert_eq!(r["config"]["ramp_up_s"], 2.0);
}

#[test]
fn serial_an_open_loop_keeps_its_rate_while_in_flight_grows() {
    // 2 s per request: at 20 per second ~40 are in flight, far above --concurrency's 10
    let sim = sim(Duration::from_secs(2));
    let dir = tempfile::tempdir().unwrap();
    let (r, records) = timed(
        &sim,
        dir.path(),
        &["--rate", "20", "--duration", "5s", "--concurrency", "10"],
    );
    let n = records.len();
    assert!(
        (90..=110).contains(&n),
        "{n} requests issued in 5 s at 20/s"
    );
    let max_at = records
        .iter()
        .map(|r| f(r, "scheduled_s"))
        .fold(0.0, f64::max);
    assert!(max_at < 5.0, "scheduled at {max_at}");
    assert_eq!(r["client"]["total_requests"], n);
    assert!(
        f(&r["schedule"], "achieved_rate") > 18.0,
        "{}",
        r["schedule"]
    );
}

#[test]
fn serial_rate_stages_follow_the_profile() {
    // 0 -> 20/s over 2 s, then 20 -> 0 over 2 s: 20 + 20 = 40 requests
    let sim = sim(Duration::from_millis(20));
    let dir = tempfile::tempdir().unwrap();
    let (r, records) = timed(
        &sim,
        dir.path(),
        &[
            "--rate",
            "20",
            "--stages",
            "2s:20,2s:0",
            "--arrival",
            "constant",
        ],
    );
    let at: Vec<f64> = records.iter().map(|r| f(r, "scheduled_s")).collect();
    assert!((39..=41).contains(&at.len()), "{} requests", at.len());
    // ~half in each stage, fewer in each stage's quiet end than its busy one
    let in_range = |a: f64, b: f64| at.iter().filter(|&&t| t >= a && t < b).count();
    assert!((18..=22).contains(&in_range(0.0, 2.0)), "{at:?}");
    assert!(in_range(0.0, 1.0) < in_range(1.0, 2.0), "{at:?}");
    assert!(in_range(3.0, 4.0) < in_range(2.0, 3.0), "{at:?}");
    assert_eq!(r["config"]["stages"], "2s:20,2s:0");
    assert_eq!(r["config"]["duration_s"], 4.0);
}

#[test]
fn serial_concurrency_stages_cap_requests_in_flight() {
    // 1 -> 4 in flight over 1 s, hold 4 for 1 s; requests of 3 s never finish inside it
    let sim = sim(Duration::from_secs(3));
    let dir = tempfile::tempdir().unwrap();
    let (_, records) = timed(&sim, dir.path(), &["--stages", "1s:4,1s:4"]);
    assert_eq!(records.len(), 4, "the level's peak, one request per slot");
    assert_eq!(started_before(&records, 0.1), 1);
}

#[test]
fn bad_timing_flags_get_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 2);
    for (args, want) in [
        (
            vec!["--duration", "5s", "--num-requests", "3"],
            "--duration and --num-requests",
        ),
        (vec!["--warmup", "5s"], "--warmup 5s needs --duration"),
        (
            vec!["--stages", "1s:2", "--ramp-up", "1s"],
            "--stages and --ramp-up",
        ),
        (vec!["--stages", "1s"], "stage 1 (\"1s\")"),
        (
            vec!["--stages", "1s:2", "--warmup", "1s"],
            "--stages and --warmup 1s",
        ),
    ] {
        let o = run(load_test()
            .args(["--vllm-url", "http://127.0.0.1:9", "--adapter-name", "a"])
            .arg("--eval-data-path")
            .arg(&eval)
            .arg("--output-dir")
            .arg(dir.path().join("out"))
            .args(&args));
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn serial_think_time_paces_each_user() {
    // 2 users, ~15 ms requests, 500 ms pauses: each user sends every ~0.52 s, so ~8 in 2 s
    // (without the pauses, ~260)
    let sim = sim(Duration::from_millis(10));
    let dir = tempfile::tempdir().unwrap();
    let (r, records) = timed(
        &sim,
        dir.path(),
        &[
            "--concurrency",
            "2",
            "--duration",
            "2s",
            "--think-time",
            "500ms",
        ],
    );
    let n = records.len();
    assert!((6..=9).contains(&n), "{n} requests");
    assert_eq!(r["config"]["think"], "500ms");
    // the pause comes after the request: no two of one user's starts are closer than it
    let mut starts: Vec<f64> = records.iter().map(|r| f(r, "start_s")).collect();
    starts.sort_by(f64::total_cmp);
    let close = starts.windows(3).filter(|w| w[2] - w[0] < 0.45).count();
    assert_eq!(close, 0, "three starts within one pause: {starts:?}");
}
