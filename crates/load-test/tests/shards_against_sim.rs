//! Scale-out against `vllm-sim`: four `load-test` shards started together (`--start-at`) and
//! merged by `load-test merge` report what one process sending the same requests reports: the
//! same request count, TTFT/E2E percentiles that are exactly the nearest-rank ones over every
//! shard's records, ITL within the histogram's precision of a single run's, and the union of
//! the shards' windows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use test_support::sim::{Sim, eval_file};
use test_support::steps::{
    load_test, load_test_results, most_in_flight, request_records, run, run_together, stderr,
};

fn sim() -> Sim {
    Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(20),
        itl: Duration::from_millis(5),
        ..Default::default()
    })
}

/// `load-test` against `sim` with the common flags, 80 requests, then `args`.
fn load(sim: &Sim, eval: &Path, out: &Path, args: &[&str]) -> std::process::Command {
    let mut c = staged(
        sim,
        eval,
        out,
        &["--num-requests", "80", "--concurrency", "8"],
    );
    c.args(args);
    c
}

/// `load-test` against `sim` with the common flags but the load's length, then `args`.
fn staged(sim: &Sim, eval: &Path, out: &Path, args: &[&str]) -> std::process::Command {
    let mut c = common(
        eval,
        out,
        &["--vllm-url", &sim.url, "--adapter-name", "candidate"],
    );
    c.args(args);
    c
}

/// `load-test` with `args`, then the common flags (no server, adapter or load's length: a
/// mix's names them).
fn common(eval: &Path, out: &Path, args: &[&str]) -> std::process::Command {
    let mut c = load_test();
    c.args(args)
        .arg("--eval-data-path")
        .arg(eval)
        .arg("--output-dir")
        .arg(out)
        .args(["--max-tokens", "8"])
        .args(["--progress-interval", "0", "--poll-interval", "0"]);
    c
}

fn merge(dirs: &[PathBuf], out: &Path) -> std::process::Output {
    run(load_test()
        .arg("merge")
        .args(dirs)
        .arg("--output-dir")
        .arg(out))
}

/// Two shards of a load against `sim`, started together at `at`, each with the common flags,
/// `args(index)` and its shard flags: their directories under `dir`.
fn two_shards(
    sim: &Sim,
    eval: &Path,
    dir: &Path,
    at: &str,
    args: &dyn Fn(usize) -> Vec<&'static str>,
) -> Vec<PathBuf> {
    shards(2, dir, at, &|i, d| staged(sim, eval, d, &args(i)))
}

/// `n` shards of a load, started together at `at`: shard `i` runs `command(i, its
/// directory)` with its shard flags added. Their directories under `dir`.
fn shards(
    n: usize,
    dir: &Path,
    at: &str,
    command: &dyn Fn(usize, &Path) -> std::process::Command,
) -> Vec<PathBuf> {
    let dirs: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("shard-{i}"))).collect();
    run_together(
        dirs.iter()
            .enumerate()
            .map(|(i, d)| {
                let mut c = command(i, d);
                c.args(["--shard-count", &n.to_string()]).args([
                    "--shard-index",
                    &i.to_string(),
                    "--start-at",
                    at,
                ]);
                c
            })
            .collect(),
    );
    dirs
}

/// An RFC 3339 time of the results.
fn utc(v: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// The nearest-rank percentile `q` of `v` (sorted).
fn rank(v: &[f64], q: f64) -> f64 {
    let n = v.len();
    let r = ((q * n as f64).ceil() as usize).clamp(1, n);
    v[r - 1]
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("a number: {v}"))
}

#[test]
fn serial_four_shards_merge_to_what_one_process_reports() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 40);
    let start_at = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    let shard_dirs: Vec<PathBuf> = (0..4)
        .map(|i| dir.path().join(format!("shard-{i}")))
        .collect();
    let children: Vec<_> = shard_dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut c = load(
                &sim,
                &eval,
                d,
                &["--shard-count", "4", "--start-at", &start_at],
            );
            // the index from an Indexed Job's env for one of them
            if i == 3 {
                c.env("JOB_COMPLETION_INDEX", "3");
            } else {
                c.args(["--shard-index", &i.to_string()]);
            }
            c
        })
        .collect();
    run_together(children);
    let mut all_ttft = Vec::new();
    let mut all_e2e = Vec::new();
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    for (i, d) in shard_dirs.iter().enumerate() {
        let r = load_test_results(d);
        assert_eq!(r["shard"]["index"], i as u64);
        assert_eq!(r["config"]["concurrency"], 2, "a quarter of 8");
        assert_eq!(r["client"]["total_requests"], 20, "every 4th of 80");
        assert!(r["server"].is_null(), "a shard does not query the server");
        assert_eq!(r["validity"]["valid"], false);
        for rec in request_records(d) {
            all_ttft.push(f(&rec["ttft_s"]));
            all_e2e.push(f(&rec["e2e_s"]));
        }
        starts.push(r["timing"]["load_start"].as_str().unwrap().to_string());
        ends.push(r["timing"]["load_end"].as_str().unwrap().to_string());
    }
    // the shards started together
    let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
    let first = starts.iter().map(|s| parse(s)).min().unwrap();
    let last = starts.iter().map(|s| parse(s)).max().unwrap();
    assert!((last - first).num_milliseconds() < 500, "{starts:?}");

    let merged_dir = dir.path().join("merged");
    let out = merge(&shard_dirs, &merged_dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let m = load_test_results(&merged_dir);
    assert_eq!(m["status"], "completed");
    assert_eq!(m["shard"]["count"], 4);
    assert!(m["shard"].get("index").is_none());
    assert_eq!(m["config"]["concurrency"], 8, "the shards' together");
    let c = &m["client"];
    assert_eq!(c["total_requests"], 80);
    assert_eq!(c["successful_requests"], 80);
    // exact: the nearest-rank percentiles over every shard's records (samples are f32)
    all_ttft.sort_by(f64::total_cmp);
    all_e2e.sort_by(f64::total_cmp);
    for (q, key) in [(0.5, "p50"), (0.9, "p90"), (0.99, "p99")] {
        let (t, e) = (rank(&all_ttft, q), rank(&all_e2e, q));
        assert!(
            (f(&c["ttft_s"][key]) - t).abs() < 1e-6,
            "ttft {key}: {} vs {t}",
            c["ttft_s"][key]
        );
        assert!(
            (f(&c["e2e_s"][key]) - e).abs() < 1e-6,
            "e2e {key}: {} vs {e}",
            c["e2e_s"][key]
        );
    }
    // the union window
    let min_start = starts.iter().min_by_key(|s| parse(s)).unwrap();
    let max_end = ends.iter().max_by_key(|s| parse(s)).unwrap();
    assert_eq!(
        parse(m["timing"]["load_start"].as_str().unwrap()),
        parse(min_start)
    );
    assert_eq!(
        parse(m["timing"]["load_end"].as_str().unwrap()),
        parse(max_end)
    );
    // every record, once, each with its shard
    let recs = request_records(&merged_dir);
    assert_eq!(recs.len(), 80);
    assert_eq!(recs.iter().filter(|r| r["shard"] == 2).count(), 20);
    // no server figures without Prometheus: not a gate measurement
    assert_eq!(m["validity"]["valid"], false);

    // one process over the same requests
    let single_dir = dir.path().join("single");
    let out = run(&mut load(&sim, &eval, &single_dir, &[]));
    assert!(out.status.success(), "{}", stderr(&out));
    let s = load_test_results(&single_dir);
    assert_eq!(s["client"]["total_requests"], c["total_requests"]);
    assert_eq!(s["client"]["output_tokens"], c["output_tokens"]);
    // the sim's delays are fixed: the same figures within scheduling noise
    let near = |a: &Value, b: &Value, tol: f64| (f(a) - f(b)).abs() <= tol;
    assert!(near(
        &s["client"]["ttft_s"]["p50"],
        &c["ttft_s"]["p50"],
        0.015
    ));
    assert!(near(
        &s["client"]["itl_s"]["p50"],
        &c["itl_s"]["p50"],
        0.003
    ));
    assert_eq!(sim.stats().accepted, 160);
}

/// The nearest-rank p50 / p95 of the `key` of the records of `arm` in `recs` (sorted).
fn arm_ranks(recs: &[Value], arm: &str, key: &str) -> (usize, f64, f64) {
    let mut v: Vec<f64> = recs
        .iter()
        .filter(|r| r["arm"] == arm)
        .map(|r| f(&r[key]))
        .collect();
    v.sort_by(f64::total_cmp);
    (v.len(), rank(&v, 0.5), rank(&v, 0.95))
}

/// An A/B load (`--baseline-adapter`) in three shards: the merge keeps both arms, each with
/// every one of its requests (percentiles exact over the shards' records), as one process
/// sending the same requests reports them; a shard without its baseline tally is refused.
#[test]
fn serial_ab_shards_merge_both_arms() {
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(10),
        itl: Duration::from_millis(2),
        lora_modules: vec![
            vllm_sim::LoraModule::new("candidate", "/models/lora"),
            vllm_sim::LoraModule::new("baseline", "/models/lora-prod"),
        ],
        max_loras: 2,
        adapter_latency_scale: vec![vllm_sim::LatencyScale::new("baseline", 3.0)],
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 30);
    let ab = [
        "--baseline-adapter",
        "baseline",
        "--num-requests",
        "30",
        "--concurrency",
        "6",
    ];
    let start_at = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    let shard_dirs = shards(3, dir.path(), &start_at, &|_, d| {
        staged(&sim, &eval, d, &ab)
    });
    let mut recs = Vec::new();
    for d in &shard_dirs {
        let r = load_test_results(d);
        assert_eq!(r["client"]["total_requests"], 10, "every 3rd of 30");
        assert_eq!(r["baseline_arm"]["client"]["total_requests"], 10);
        assert!(r["shard"]["baseline"].is_object(), "{}", r["shard"]);
        // each candidate request with its baseline twin in the same shard, the shard's pairs
        // counterbalanced (AB, BA, ...)
        let mut mine = request_records(d);
        mine.sort_by_key(|r| r["seq"].as_u64().unwrap());
        for (j, pair) in mine.chunks(2).enumerate() {
            assert_eq!(pair[0]["prompt_index"], pair[1]["prompt_index"], "{pair:?}");
            let first = if j % 2 == 0 { "candidate" } else { "baseline" };
            assert_eq!(pair[0]["arm"], first, "pair {j}: {pair:?}");
            assert_ne!(pair[0]["arm"], pair[1]["arm"]);
        }
        recs.extend(mine);
    }
    let merged_dir = dir.path().join("merged");
    let out = merge(&shard_dirs, &merged_dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let m = load_test_results(&merged_dir);
    assert_eq!(m["status"], "completed");
    assert!(m["shard"].get("baseline").is_none());
    let (c, b) = (&m["client"], &m["baseline_arm"]["client"]);
    assert_eq!(m["baseline_arm"]["adapter"]["name"], "baseline");
    for (arm, figures) in [("candidate", c), ("baseline", b)] {
        assert_eq!(figures["total_requests"], 30, "{arm}");
        assert_eq!(figures["successful_requests"], 30, "{arm}");
        for key in ["ttft_s", "e2e_s"] {
            let (n, p50, p95) = arm_ranks(&recs, arm, key);
            assert_eq!(n, 30, "{arm}");
            assert!(
                (f(&figures[key]["p50"]) - p50).abs() < 1e-6,
                "{arm} {key} p50"
            );
            assert!(
                (f(&figures[key]["p95"]) - p95).abs() < 1e-6,
                "{arm} {key} p95"
            );
        }
    }
    // the arms kept apart: the baseline is 3x slower to its first token
    assert!(
        f(&b["ttft_s"]["p50"]) > 2.0 * f(&c["ttft_s"]["p50"]),
        "{b} vs {c}"
    );
    assert_eq!(request_records(&merged_dir).len(), 60, "both arms' records");

    // one process over the same requests
    let single_dir = dir.path().join("single");
    let out = run(&mut staged(&sim, &eval, &single_dir, &ab));
    assert!(out.status.success(), "{}", stderr(&out));
    let s = load_test_results(&single_dir);
    for arm in ["client", "baseline_arm"] {
        let (single, merged) = match arm {
            "client" => (&s["client"], c),
            _ => (&s["baseline_arm"]["client"], b),
        };
        assert_eq!(single["total_requests"], merged["total_requests"], "{arm}");
        assert_eq!(single["output_tokens"], merged["output_tokens"], "{arm}");
    }

    // a shard of an A/B load whose results lack the baseline tally (an older load-test)
    let path = shard_dirs[1].join("load_test_results.json");
    let mut r = load_test_results(&shard_dirs[1]);
    r["shard"].as_object_mut().unwrap().remove("baseline");
    std::fs::write(&path, serde_json::to_vec(&r).unwrap()).unwrap();
    let out = merge(&shard_dirs, &dir.path().join("refused"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("shard-1: an A/B shard"), "{text}");
}

/// A LoRA mix in two shards: each member's merged figures hold every one of its requests
/// (percentiles exact over the shards' records) and its count equals one process's; the cold
/// load kept is the slowest of the shards'.
#[test]
fn serial_mix_shards_merge_each_member() {
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(10),
        itl: Duration::from_millis(2),
        lora_modules: vec![
            vllm_sim::LoraModule::new("sql-a", "/models/a"),
            vllm_sim::LoraModule::new("sql-b", "/models/b"),
        ],
        max_loras: 2,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 20);
    let mix = [
        "--lora-mix",
        "sql-a=3,sql-b=1",
        "--num-requests",
        "40",
        "--concurrency",
        "4",
    ];
    let start_at = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    let shard_dirs = shards(2, dir.path(), &start_at, &|_, d| {
        let mut c = common(&eval, d, &["--vllm-url", &sim.url]);
        c.args(mix);
        c
    });
    let mut recs = Vec::new();
    let mut sent = [0u64; 2];
    let mut colds = [Vec::new(), Vec::new()];
    for d in &shard_dirs {
        let r = load_test_results(d);
        assert_eq!(r["shard"]["members"].as_array().map(Vec::len), Some(2));
        for (i, m) in r["mix"]["members"].as_array().unwrap().iter().enumerate() {
            sent[i] += m["client"]["total_requests"].as_u64().unwrap();
            colds[i].push(f(&m["cold_load"]["ttft_s"]));
        }
        recs.extend(request_records(d));
    }
    let merged_dir = dir.path().join("merged");
    let out = merge(&shard_dirs, &merged_dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let m = load_test_results(&merged_dir);
    assert!(m["shard"].get("members").is_none());
    let members = m["mix"]["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    let total: u64 = sent.iter().sum();
    assert_eq!(m["client"]["total_requests"], total);
    for (i, (member, name)) in members.iter().zip(["sql-a", "sql-b"]).enumerate() {
        assert_eq!(member["name"], name);
        let c = &member["client"];
        assert_eq!(c["total_requests"], sent[i], "{name}");
        let share = sent[i] as f64 / total as f64;
        assert!((f(&member["share_sent"]) - share).abs() < 1e-9, "{name}");
        let mut ttft: Vec<f64> = recs
            .iter()
            .filter(|r| r["target"] == name)
            .map(|r| f(&r["ttft_s"]))
            .collect();
        ttft.sort_by(f64::total_cmp);
        assert_eq!(ttft.len() as u64, sent[i], "{name}");
        for (q, key) in [(0.5, "p50"), (0.95, "p95")] {
            assert!(
                (f(&c["ttft_s"][key]) - rank(&ttft, q)).abs() < 1e-6,
                "{name} {key}"
            );
        }
        let slowest = colds[i].iter().copied().fold(f64::MIN, f64::max);
        let cold = &member["cold_load"];
        assert_eq!(f(&cold["ttft_s"]), slowest, "{name}");
        let over = f(&cold["extra_ttft_over_p50_s"]);
        assert!(
            (over - (slowest - f(&c["ttft_s"]["p50"]))).abs() < 1e-9,
            "{name}"
        );
    }
    assert_eq!(m["validity"]["valid"], false);

    // one process over the same requests: the same count for each member
    let single_dir = dir.path().join("single");
    let out = run(load_test()
        .args(["--vllm-url", &sim.url])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&single_dir)
        .args([
            "--max-tokens",
            "8",
            "--progress-interval",
            "0",
            "--poll-interval",
            "0",
        ])
        .args(mix));
    assert!(out.status.success(), "{}", stderr(&out));
    let s = load_test_results(&single_dir);
    for (single, merged) in s["mix"]["members"].as_array().unwrap().iter().zip(members) {
        assert_eq!(
            single["client"]["total_requests"], merged["client"]["total_requests"],
            "{}",
            single["name"]
        );
    }

    // a target mix has no server side: a merge asked to query Prometheus for one is refused
    for d in &shard_dirs {
        let mut r = load_test_results(d);
        r["mix"]["kind"] = "targets".into();
        std::fs::write(
            d.join("load_test_results.json"),
            serde_json::to_vec(&r).unwrap(),
        )
        .unwrap();
    }
    let out = run(load_test()
        .arg("merge")
        .args(&shard_dirs)
        .args(["--prometheus-url", "http://127.0.0.1:9"])
        .arg("--output-dir")
        .arg(dir.path().join("refused")));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("a target mix has no server-side figures"),
        "{text}"
    );
}

/// A target mix (two servers) in two shards: each target's merged count is the shards' sum,
/// and the merged results say why they are no gate measurement without asking for a
/// Prometheus the merge would refuse.
#[test]
fn target_mix_shards_merge_each_target() {
    let (one, two) = (sim(), sim());
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 12);
    let targets = [
        format!("--target=name=one,url={},model=candidate", one.url),
        format!("--target=name=two,url={},model=candidate,weight=2", two.url),
    ];
    let start_at = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    let shard_dirs = shards(2, dir.path(), &start_at, &|_, d| {
        let mut c = common(&eval, d, &["--num-requests", "24", "--concurrency", "4"]);
        c.args(&targets);
        c
    });
    let mut sent = [0u64; 2];
    for d in &shard_dirs {
        let r = load_test_results(d);
        for (i, m) in r["mix"]["members"].as_array().unwrap().iter().enumerate() {
            sent[i] += m["client"]["total_requests"].as_u64().unwrap();
        }
    }
    let merged_dir = dir.path().join("merged");
    let out = merge(&shard_dirs, &merged_dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let m = load_test_results(&merged_dir);
    let members = m["mix"]["members"].as_array().unwrap();
    assert_eq!(members[0]["client"]["total_requests"], sent[0]);
    assert_eq!(members[1]["client"]["total_requests"], sent[1]);
    // each server saw what the merge counts for it
    assert_eq!(one.stats().accepted, sent[0]);
    assert_eq!(two.stats().accepted, sent[1]);
    let reasons = m["validity"]["reasons"].to_string();
    assert!(reasons.contains("a target mix"), "{reasons}");
    assert!(!reasons.contains("--prometheus-url"), "{reasons}");
}

/// Targets with their own `concurrency=` in two shards: each target's closed loop is split
/// whole among the shards (3 -> 2 + 1, 2 -> 1 + 1), each shard keeps no more of a target's
/// requests in flight than its part, and the merge adds the parts up again.
#[test]
fn serial_target_concurrency_is_split_among_shards() {
    // slow enough that every slot stays taken: the caps bind
    let slow = || {
        Sim::start(vllm_sim::SimConfig {
            ttft: Duration::from_millis(40),
            itl: Duration::from_millis(10),
            ..Default::default()
        })
    };
    let (one, two) = (slow(), slow());
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 12);
    let targets = [
        format!(
            "--target=name=one,url={},model=candidate,concurrency=3",
            one.url
        ),
        format!(
            "--target=name=two,url={},model=candidate,concurrency=2",
            two.url
        ),
    ];
    let start_at = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    let shard_dirs = shards(2, dir.path(), &start_at, &|_, d| {
        let mut c = common(&eval, d, &["--duration", "2s"]);
        c.args(&targets);
        c
    });
    let parts = [[2, 1], [1, 1]];
    let mut sent = [0u64; 2];
    for (d, part) in shard_dirs.iter().zip(parts) {
        let r = load_test_results(d);
        assert_eq!(
            r["config"]["concurrency"],
            part[0] + part[1],
            "{}: the shard's level is its parts' sum",
            d.display()
        );
        let recs = request_records(d);
        for (i, name) in ["one", "two"].into_iter().enumerate() {
            let mine: Vec<&Value> = recs.iter().filter(|r| r["target"] == name).collect();
            let most = most_in_flight(mine.iter().copied());
            assert_eq!(
                most,
                part[i] as usize,
                "{}: target {name} kept {most} in flight, its part is {}",
                d.display(),
                part[i]
            );
            sent[i] += r["mix"]["members"][i]["client"]["total_requests"]
                .as_u64()
                .unwrap();
        }
        // the flag's value is kept as given, as --stages are
        assert_eq!(r["mix"]["members"][0]["concurrency"], 3);
    }
    let merged_dir = dir.path().join("merged");
    let out = merge(&shard_dirs, &merged_dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let m = load_test_results(&merged_dir);
    assert_eq!(m["config"]["concurrency"], 5, "the targets' sum");
    let members = m["mix"]["members"].as_array().unwrap();
    assert_eq!(members[0]["concurrency"], 3);
    assert_eq!(members[1]["concurrency"], 2);
    assert_eq!(members[0]["client"]["total_requests"], sent[0]);
    assert_eq!(members[1]["client"]["total_requests"], sent[1]);
    assert_eq!(one.stats().accepted, sent[0]);
    assert_eq!(two.stats().accepted, sent[1]);
}

/// `--step-gap` spaces a sharded sweep's steps: given to a plain load it is named unused, and
/// the load runs.
#[test]
fn a_step_gap_without_shards_is_named_unused() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 4);
    let out = run(&mut load(
        &sim,
        &eval,
        &dir.path().join("out"),
        &["--num-requests", "4", "--step-gap", "5s"],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--step-gap/STEP_GAP given but not used"),
        "{}",
        stderr(&out)
    );
}

/// A sweep in two shards: every shard runs its part of each step's level and starts each step
/// on the shared clock (`--start-at` + i x (step + gap)); the merge keeps the steps apart, each
/// with every one of its requests (percentiles exact over the shards' records of that step)
/// and the union of the shards' windows of that step.
#[test]
fn serial_sweep_shards_move_from_step_to_step_together() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 20);
    let lead = chrono::Duration::seconds(3);
    let start_at = chrono::Utc::now() + lead;
    let at = start_at.to_rfc3339();
    let shard_dirs = two_shards(&sim, &eval, dir.path(), &at, &|_| {
        vec![
            "--steps",
            "2,4",
            "--step-duration",
            "1s",
            "--step-gap",
            "1s",
        ]
    });

    let mut recs = Vec::new();
    let mut totals = [0u64; 2];
    let mut spans: Vec<Vec<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>> =
        vec![Vec::new(), Vec::new()];
    for d in &shard_dirs {
        let r = load_test_results(d);
        let steps = r["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!(r["shard"]["steps"].as_array().map(Vec::len), Some(2));
        for (i, (step, part)) in steps.iter().zip([1, 2]).enumerate() {
            assert_eq!(step["concurrency"], part, "half of step {i}'s level");
            assert!(step["server"].is_null());
            assert!(
                step["server_note"]
                    .as_str()
                    .unwrap()
                    .contains("load-test merge")
            );
            totals[i] += step["client"]["total_requests"].as_u64().unwrap();
            spans[i].push((utc(&step["load_start"]), utc(&step["load_end"])));
        }
        recs.extend(request_records(d));
    }
    // step 1 starts on the clock: --start-at + (1 s measured + 1 s gap), in both shards
    for (s, _) in &spans[1] {
        let late = (*s - (start_at + chrono::Duration::seconds(2))).num_milliseconds();
        assert!(
            (0..500).contains(&late),
            "step 1 started {late} ms after its time"
        );
    }
    let merged_dir = dir.path().join("merged");
    let out = merge(&shard_dirs, &merged_dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let m = load_test_results(&merged_dir);
    assert_eq!(m["status"], "completed");
    assert!(m["shard"].get("steps").is_none());
    let steps = m["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    for (i, (step, level)) in steps.iter().zip([2, 4]).enumerate() {
        assert_eq!(step["concurrency"], level, "the shards' parts together");
        let c = &step["client"];
        assert_eq!(c["total_requests"], totals[i], "step {i}");
        let mut ttft: Vec<f64> = recs
            .iter()
            .filter(|r| r["step"] == i as u64)
            .map(|r| f(&r["ttft_s"]))
            .collect();
        ttft.sort_by(f64::total_cmp);
        assert_eq!(ttft.len() as u64, totals[i]);
        for (q, key) in [(0.5, "p50"), (0.99, "p99")] {
            assert!(
                (f(&c["ttft_s"][key]) - rank(&ttft, q)).abs() < 1e-6,
                "step {i} {key}"
            );
        }
        // the union of the shards' windows of this step
        let first = spans[i].iter().map(|s| s.0).min().unwrap();
        let last = spans[i].iter().map(|s| s.1).max().unwrap();
        assert_eq!(utc(&step["load_start"]), first, "step {i}");
        assert_eq!(utc(&step["load_end"]), last, "step {i}");
        assert!(step["server"].is_null());
        assert!(
            step["server_note"]
                .as_str()
                .unwrap()
                .contains("--prometheus-url")
        );
    }
    assert_eq!(m["client"]["total_requests"], totals[0] + totals[1]);
    assert!(m["server"].is_null());
    assert!(
        m["validity"].to_string().contains("a step sweep"),
        "{}",
        m["validity"]
    );

    // a sharded sweep needs the shared clock and a request in flight per shard at every step
    for (args, want) in [
        (&["--steps", "2,4"][..], "needs --start-at"),
        (
            &["--steps", "1,4", "--start-at", &at][..],
            "more shards than the lowest --steps level",
        ),
    ] {
        let shard = ["--shard-count", "2", "--shard-index", "0"];
        let out = run(&mut staged(
            &sim,
            &eval,
            &dir.path().join("bad"),
            &[args, &shard[..]].concat(),
        ));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
}

/// An open-loop sweep in two shards with a warm-up and a cool-down in every step: each shard
/// sends half of each step's rate, step 1 starts on the clock that counts them
/// (`--start-at` + 0.5 + 1 + 0.5 + 1 s), and the merged rates are over the measured steps, as
/// one process's (not over the union, gaps and all).
#[test]
fn serial_a_rate_sweep_in_shards_keeps_the_clock_with_warmup_and_cooldown() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 20);
    let start_at = chrono::Utc::now() + chrono::Duration::seconds(3);
    let at = start_at.to_rfc3339();
    let shard_dirs = two_shards(&sim, &eval, dir.path(), &at, &|_| {
        vec![
            "--rate",
            "1",
            "--steps",
            "20,40",
            "--step-duration",
            "1s",
            "--warmup",
            "500ms",
            "--cooldown",
            "500ms",
            "--step-gap",
            "1s",
        ]
    });

    for d in &shard_dirs {
        let r = load_test_results(d);
        let steps = r["steps"].as_array().unwrap();
        assert_eq!(steps[0]["rate"], 10.0, "half of 20/s");
        assert_eq!(steps[1]["rate"], 20.0, "half of 40/s");
        let late = (utc(&steps[1]["load_start"]) - (start_at + chrono::Duration::seconds(3)))
            .num_milliseconds();
        assert!(
            (0..500).contains(&late),
            "step 1 started {late} ms after its time"
        );
    }
    let merged_dir = dir.path().join("merged");
    let out = merge(&shard_dirs, &merged_dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let m = load_test_results(&merged_dir);
    let steps = m["steps"].as_array().unwrap();
    assert_eq!(steps[0]["rate"], 20.0);
    assert_eq!(steps[1]["rate"], 40.0);
    // 20/s and 40/s for 1 s each: about 60 measured requests over 2 measured seconds; the
    // union from the first step's warm-up to the last one's end is over 5 s
    let c = &m["client"];
    let total = f(&c["total_requests"]);
    assert!((50.0..=70.0).contains(&total), "{total}");
    let rps = f(&c["requests_per_s"]);
    assert!(
        (rps - total / 2.0).abs() <= 0.1 * total / 2.0,
        "{rps} for {total} requests"
    );
}

/// Shards given different step clocks (here, gaps) ran no step together: the merge says which
/// shard started a step after another had ended it, and writes no results.
#[test]
fn sweep_shards_on_different_clocks_are_refused() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 8);
    let at = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let shard_dirs = two_shards(&sim, &eval, dir.path(), &at, &|i| {
        let gap = ["1s", "3s"][i];
        vec![
            "--steps",
            "2,2",
            "--step-duration",
            "500ms",
            "--step-gap",
            gap,
        ]
    });
    let out = merge(&shard_dirs, &dir.path().join("merged"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("step 1:") && text.contains("shard-1 started it"),
        "{text}"
    );
    assert!(text.contains("did not run their steps together"), "{text}");
    assert!(!dir.path().join("merged/load_test_results.json").exists());
}

#[test]
fn shards_that_do_not_make_one_load_are_refused() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 8);
    let shard = |i: u32, extra: &[&str]| {
        let d = dir.path().join(format!("s{i}-{}", extra.len()));
        let out = run(&mut load(
            &sim,
            &eval,
            &d,
            &[
                &[
                    "--shard-count",
                    "2",
                    "--shard-index",
                    &i.to_string(),
                    "--num-requests",
                    "4",
                ],
                extra,
            ]
            .concat(),
        ));
        assert!(out.status.success(), "{}", stderr(&out));
        d
    };
    let (a, b, other) = (
        shard(0, &[]),
        shard(1, &[]),
        shard(1, &["--max-tokens", "4"]),
    );
    for (dirs, want) in [
        (vec![a.clone()], "shard(s) 1 of 2 missing"),
        (vec![a.clone(), a.clone()], "are both shard 0"),
        (
            vec![a.clone(), other],
            "ran different loads (max_tokens differs)",
        ),
        (vec![a.clone(), dir.path().join("nowhere")], "nowhere"),
    ] {
        let out = merge(&dirs, &dir.path().join("m"));
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(want), "{want}: {text}");
        assert!(!dir.path().join("m/load_test_results.json").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("m/load_test_status.txt"))
                .unwrap()
                .trim(),
            "failed"
        );
    }
    let out = merge(&[a, b], &dir.path().join("m"));
    assert!(out.status.success(), "{}", stderr(&out));
    // bad shard flags
    for (args, want) in [
        (&["--shard-count", "2"][..], "needs --shard-index"),
        (
            &["--shard-count", "2", "--shard-index", "2"],
            "not below --shard-count 2",
        ),
        (
            &["--shard-count", "9", "--shard-index", "8"],
            "more shards than --concurrency 8",
        ),
        (
            &[
                "--shard-count",
                "2",
                "--shard-index",
                "0",
                "--target",
                "name=a,url=http://127.0.0.1:9,model=m,concurrency=1",
            ],
            "more shards than target \"a\"'s concurrency=1",
        ),
        (
            &["--start-at", "tomorrow"],
            "--start-at \"tomorrow\": expected RFC 3339",
        ),
    ] {
        let out = run(&mut load(&sim, &eval, &dir.path().join("bad"), args));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
}

/// Open-loop shards with `--arrival constant` interleave: shard `i` of `n` starts `i / n` of a
/// gap later, so the union is one constant schedule at the whole rate (20/s: every 50 ms), not
/// `n` requests at every `n / rate` instant.
#[test]
fn constant_arrivals_of_shards_interleave_into_one_schedule() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 8);
    let start_at = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let dirs = shards(4, dir.path(), &start_at, &|_, d| {
        load(
            &sim,
            &eval,
            d,
            &[
                "--rate",
                "20",
                "--arrival",
                "constant",
                "--num-requests",
                "24",
            ],
        )
    });
    let mut scheduled: Vec<(f64, usize)> = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        let records = request_records(d);
        assert_eq!(records.len(), 6, "shard {i}");
        scheduled.extend(records.iter().map(|r| (f(&r["scheduled_s"]), i)));
    }
    scheduled.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (k, &(at, shard)) in scheduled.iter().enumerate() {
        assert!(
            (at - k as f64 / 20.0).abs() < 1e-9,
            "request {k} at {at}: {scheduled:?}"
        );
        assert_eq!(shard, k % 4, "request {k}: {scheduled:?}");
    }
    let out = merge(&dirs, &dir.path().join("m"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        load_test_results(&dir.path().join("m"))["client"]["total_requests"],
        24
    );
}

/// `--stages` as the results record it.
const STAGES: &str = "10ms:5,1s 500ms:5";

/// `--stages` in shards: each runs its part of every stage's level (5 in flight over 2 shards:
/// 3 and 2), the shards' results and the merge keep the whole load's stages.
#[test]
fn staged_shards_run_their_part_of_each_stage() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 8);
    let start_at = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    // --concurrency fewer than the shards: the stages set the level, the flag is recorded
    let stages = ["--stages", "10ms:5,1500ms:5", "--concurrency", "1"];
    let dirs = shards(2, dir.path(), &start_at, &|_, d| {
        staged(&sim, &eval, d, &stages)
    });
    for (d, part) in dirs.iter().zip([3, 2]) {
        let r = load_test_results(d);
        assert_eq!(r["config"]["stages"], STAGES, "{}", r["config"]);
        let records = request_records(d);
        // 20 ms + 7 x 5 ms a request: dozens of requests per slot in 1.5 s
        assert!(records.len() > 10 * part, "{}", records.len());
        assert_eq!(most_in_flight(&records), part, "{}", d.display());
    }
    let merged = dir.path().join("m");
    let out = merge(&dirs, &merged);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = load_test_results(&merged);
    assert_eq!(r["config"]["stages"], STAGES);
    assert_eq!(
        r["config"]["concurrency"], 1,
        "the flag's value, not a sum of 1s"
    );
    let all: Vec<Value> = request_records(&merged);
    assert_eq!(
        r["client"]["total_requests"].as_u64(),
        Some(all.len() as u64)
    );
    // more shards than the stages' peak of requests in flight: refused before the network
    let out = run(&mut staged(
        &sim,
        &eval,
        &dir.path().join("x"),
        &[
            "--shard-count",
            "6",
            "--shard-index",
            "0",
            "--stages",
            "1s:5",
        ],
    ));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("more shards than the --stages peak of 5"),
        "{}",
        stderr(&out)
    );
}

/// A wait for `--start-at` longer than vLLM's 5 s idle timeout would leave the shard's pool
/// closed by the server: its connections are opened again 2 s before the start, and the load
/// opens none (the first opening is the one recorded).
#[test]
fn serial_a_long_wait_for_the_start_opens_the_pool_again_before_it() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 16);
    let out = dir.path().join("s0");
    // 14 s: however slow a loaded machine makes the start-up and the first opening (a debug
    // build beside other tests: up to 4 s), the pool is idle well past the sim's 5 s timeout
    // when it is opened again 2 s before the start (with 10 s the connection count was out of
    // range once in a run of the whole file, not reproduced alone: a slow start that left the
    // first pool partly open at the re-open is the likely cause)
    let start_at = (chrono::Utc::now() + chrono::Duration::seconds(14)).to_rfc3339();
    run_together(vec![load(
        &sim,
        &eval,
        &out,
        &[
            "--shard-count",
            "1",
            "--shard-index",
            "0",
            "--start-at",
            &start_at,
        ],
    )]);
    let stats = sim.stats();
    // the pre-flight's connection and the 8 slots' twice before the load; after its start at
    // most one more: the /metrics scrape after the load, whose pre-flight connection the sim
    // closed during the wait (as vLLM closes one idle for 5 s). A pool not opened again would
    // open 8 during the load.
    let before = stats.connections_before_first_generation.unwrap();
    assert!((2 * 8 + 1..=2 * 8 + 2).contains(&before), "{stats:?}");
    assert!(stats.connections - before <= 1, "{stats:?}");
    let r = load_test_results(&out);
    assert_eq!(r["preconnect"]["connections"], 8);
    assert_eq!(r["config"]["http_client"], "native");
}
