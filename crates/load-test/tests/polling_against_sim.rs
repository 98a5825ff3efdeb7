//! Polling during the load against `vllm-sim` (seed 001): `vllm_metrics.csv` from `/metrics`
//! every `--poll-interval` (its columns, its cadence, sane values), `gpu_metrics.csv` from a
//! stand-in `nvidia-smi` on PATH printing NVIDIA's documented `--format=csv,noheader,nounits`
//! output for 2 GPUs, and the skip line when there is no `nvidia-smi`. Timing-sensitive: the
//! tests are `serial_*` (one at a time) with tolerances for a loaded 2-core machine.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use test_support::sim::{Sim, eval_file};
use test_support::steps::{load_test, load_test_results as results, run, stderr};

const VLLM_HEADER: &str = "timestamp,unix_s,elapsed_s,step,num_requests_running,num_requests_waiting,kv_cache_usage_perc,prompt_tokens_total,generation_tokens_total,request_success_total,prompt_tokens_per_s,generation_tokens_per_s,error";
const GPU_HEADER: &str = "timestamp,unix_s,elapsed_s,step,gpu_timestamp,index,name,utilization_gpu_pct,utilization_memory_pct,memory_used_mib,memory_total_mib,temperature_c,power_draw_w,error";

fn sim() -> Sim {
    Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(20),
        itl: Duration::from_millis(5),
        max_num_seqs: 1024,
        ..Default::default()
    })
}

/// Runs `load-test` against `sim` with `args` and `PATH` set to `path`; returns the output
/// directory, the results and stderr.
fn poll_run(sim: &Sim, dir: &Path, path: OsString, args: &[&str]) -> (PathBuf, Value, String) {
    let eval = eval_file(dir, 20);
    let out = dir.join("out");
    let o = run(load_test()
        .env("PATH", path)
        .args(["--vllm-url", &sim.url, "--adapter-name", "candidate"])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out)
        .args(["--progress-interval", "0", "--max-tokens", "8"])
        .args(args));
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    (out, r, stderr(&o))
}

/// A `PATH` holding only an empty directory: no `nvidia-smi`.
fn empty_path(dir: &Path) -> OsString {
    let bin = dir.join("empty-bin");
    std::fs::create_dir_all(&bin).unwrap();
    bin.into_os_string()
}

/// A `PATH` with a stand-in `nvidia-smi` first: it checks it was asked the documented query
/// (as the real one, it rejects anything else) and prints 2 GPUs in the documented format.
fn stand_in_path(dir: &Path) -> OsString {
    let bin = dir.join("smi-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("nvidia-smi");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
if [ "$1" != "--query-gpu={q}" ] || [ "$2" != "--format=csv,noheader,nounits" ]; then
  echo "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help." >&2
  exit 2
fi
t=$(date '+%Y/%m/%d %H:%M:%S.000')
echo "$t, 0, NVIDIA A100-SXM4-80GB, 87, 41, 40536, 81920, 61, 312.45"
echo "$t, 1, NVIDIA A100-SXM4-80GB, 0, 0, 4, 81920, 34, [N/A]"
"#,
            q = perf_gate::loadtest::GPU_QUERY
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut dirs = vec![bin];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

/// The CSV's header and rows (no quoted commas in these files' numeric rows).
fn csv(path: &Path) -> (String, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default().to_string();
    let rows = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    (header, rows)
}

fn num(row: &[String], col: usize) -> f64 {
    row[col]
        .parse()
        .unwrap_or_else(|_| panic!("column {col} of {row:?}"))
}

/// Rows at `interval` seconds over about `secs`: count within ±2 of the expected, elapsed and
/// Unix times increasing by about `interval`.
fn check_cadence(rows: &[Vec<String>], secs: f64, interval: f64) {
    let expected = (secs / interval).round() as i64 + 1;
    let n = rows.len() as i64;
    assert!((n - expected).abs() <= 2, "{n} rows, expected ~{expected}");
    for pair in rows.windows(2) {
        let gap = num(&pair[1], 2) - num(&pair[0], 2);
        assert!(
            gap > interval * 0.4 && gap < interval * 2.5,
            "elapsed gap {gap}: {pair:?}"
        );
        let wall = num(&pair[1], 1) - num(&pair[0], 1);
        assert!((wall - gap).abs() < 0.1, "unix gap {wall} vs {gap}");
        assert!(pair[1][0] > pair[0][0], "RFC 3339 times increase: {pair:?}");
    }
    let mean = (num(&rows[rows.len() - 1], 2) - num(&rows[0], 2)) / (rows.len() - 1) as f64;
    assert!((mean - interval).abs() < interval * 0.3, "mean gap {mean}");
}

#[test]
fn serial_vllm_metrics_csv_has_its_columns_a_row_per_interval_and_the_servers_counts() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let (out, r, _) = poll_run(
        &sim,
        dir.path(),
        empty_path(dir.path()),
        &[
            "--concurrency",
            "4",
            "--duration",
            "3s",
            "--poll-interval",
            "500ms",
        ],
    );
    let (header, rows) = csv(&out.join("vllm_metrics.csv"));
    assert_eq!(header, VLLM_HEADER);
    assert_eq!(header, perf_gate::loadtest::VLLM_HEADER);
    assert!(rows.iter().all(|r| r.len() == 13), "{rows:?}");
    check_cadence(&rows, 3.0, 0.5);
    for row in &rows {
        assert_eq!(row[3], "", "no step outside a sweep: {row:?}");
        assert_eq!(row[12], "", "no error: {row:?}");
        assert!(num(row, 4) >= 0.0 && num(row, 5) >= 0.0, "{row:?}");
        let kv = num(row, 6);
        assert!((0.0..=1.0).contains(&kv), "{row:?}");
    }
    // the load kept requests running in the middle of it
    assert!(rows.iter().any(|r| num(r, 4) > 0.0), "{rows:?}");
    for pair in rows.windows(2) {
        for col in [7, 8, 9] {
            assert!(num(&pair[1], col) >= num(&pair[0], col), "{pair:?}");
        }
        assert!(
            num(&pair[1], 11) >= 0.0,
            "rates from the second row: {pair:?}"
        );
    }
    // the counter's growth over the polls is the load's tokens, less the last interval's
    let generated = r["client"]["output_tokens"]
        .as_f64()
        .unwrap_or_else(|| panic!("output_tokens in {}", r["client"]));
    let (first, last) = (&rows[0], &rows[rows.len() - 1]);
    let grew = num(last, 8) - num(first, 8);
    assert!(
        grew <= generated && grew >= generated * 0.6,
        "counter grew {grew}, the client saw {generated} tokens"
    );
    // no nvidia-smi: skipped, said once, no file
    assert!(!out.join("gpu_metrics.csv").exists());
}

#[test]
fn serial_gpu_metrics_csv_from_a_stand_in_nvidia_smi_has_a_row_per_gpu_per_interval() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let (out, r, err) = poll_run(
        &sim,
        dir.path(),
        stand_in_path(dir.path()),
        // the GPU poll follows --poll-interval by default
        &["--duration", "3s", "--poll-interval", "500ms"],
    );
    assert!(!err.contains("gpu polling skipped"), "{err}");
    let (header, rows) = csv(&out.join("gpu_metrics.csv"));
    assert_eq!(header, GPU_HEADER);
    assert_eq!(header, perf_gate::loadtest::GPU_HEADER);
    assert!(rows.len() % 2 == 0, "{rows:?}");
    for pair in rows.chunks(2) {
        assert_eq!(pair[0][0], pair[1][0], "one poll, one stamp: {pair:?}");
        assert_eq!((pair[0][5].as_str(), pair[1][5].as_str()), ("0", "1"));
        for row in pair {
            assert_eq!(row.len(), 14, "{row:?}");
            assert_eq!(row[6], "NVIDIA A100-SXM4-80GB");
            assert_eq!(row[13], "", "no error: {row:?}");
            assert!(row[4].contains('/'), "nvidia-smi's own timestamp: {row:?}");
        }
        assert_eq!(
            &pair[0][7..13],
            ["87", "41", "40536", "81920", "61", "312.45"]
        );
        // [N/A] is an empty cell
        assert_eq!(pair[1][12], "");
    }
    let polls: Vec<Vec<String>> = rows.iter().step_by(2).cloned().collect();
    check_cadence(&polls, 3.0, 0.5);
    let departures = r["departures"].to_string();
    assert!(!departures.contains("gpu polling skipped"), "{departures}");
    assert!(out.join("vllm_metrics.csv").exists());
}

#[test]
fn serial_without_nvidia_smi_gpu_polling_is_skipped_with_one_line_and_no_file() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let (out, r, err) = poll_run(
        &sim,
        dir.path(),
        empty_path(dir.path()),
        &[
            "--duration",
            "1s",
            "--poll-interval",
            "0",
            "--gpu-poll-interval",
            "250ms",
        ],
    );
    assert_eq!(
        err.matches("gpu polling skipped: nvidia-smi not found on PATH")
            .count(),
        1,
        "{err}"
    );
    assert!(
        r["departures"]
            .to_string()
            .contains("gpu polling skipped: nvidia-smi not found on PATH"),
        "{}",
        r["departures"]
    );
    assert!(!out.join("gpu_metrics.csv").exists());
    // --poll-interval 0 turns the vLLM poll off
    assert!(!out.join("vllm_metrics.csv").exists());
}

#[test]
fn serial_a_sweep_is_polled_across_its_steps_with_the_step_on_each_row() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let (out, _, _) = poll_run(
        &sim,
        dir.path(),
        empty_path(dir.path()),
        &[
            "--steps",
            "1,2",
            "--step-duration",
            "1s",
            "--poll-interval",
            "250ms",
        ],
    );
    let (header, rows) = csv(&out.join("vllm_metrics.csv"));
    assert_eq!(header, VLLM_HEADER);
    let steps: Vec<&str> = rows.iter().map(|r| r[3].as_str()).collect();
    assert!(steps.contains(&"0") && steps.contains(&"1"), "{steps:?}");
    assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
    assert!(rows.len() >= 6, "{} rows over 2 steps of 1 s", rows.len());
}
