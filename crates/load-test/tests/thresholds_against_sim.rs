//! `load-test --threshold` end to end against `vllm-sim`: a generous threshold passes, a tight
//! one exits 1 with the measurement still `completed`, a bad one exits 2 before any request.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use test_support::sim::{Sim, eval_file};
use test_support::steps::{
    load_test, load_test_results as results, load_test_status as status, run, stderr,
};

/// A simulator with a 50 ms TTFT and no faults.
fn sim() -> Sim {
    Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(50),
        itl: Duration::from_millis(1),
        ..Default::default()
    })
}

/// `load-test` against `sim` over 20 prompts: (the work directory, the output directory, the
/// command).
fn command(sim: &Sim) -> (tempfile::TempDir, PathBuf, Command) {
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 20);
    let out = dir.path().join("out");
    let mut cmd = load_test();
    cmd.args(["--vllm-url", &sim.url, "--adapter-name", "candidate"])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out)
        .args(["--progress-interval", "0", "--concurrency", "4"])
        .args(["--max-tokens", "4"]);
    (dir, out, cmd)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The threshold outcomes of the results file in `out`.
fn outcomes(out: &Path) -> Vec<serde_json::Value> {
    let r = results(out);
    test_support::schema::assert_valid(&r, "load_test_results.schema.json");
    r["thresholds"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_generous_threshold_passes_from_the_env_list() {
    let sim = sim();
    let (_dir, out, mut cmd) = command(&sim);
    let o = run(cmd.env("THRESHOLDS", "ttft_p95 < 60s,error_rate<5%,rps>0"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(status(&out), "completed");
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("PASS ")).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("PASS ttft_p95 < 60s ("), "{text}");
    assert!(lines[1].starts_with("PASS error_rate<5% (0.00%)"), "{text}");
    assert!(!text.contains("WARNING"), "{text}");
    // the summary comes first, the threshold lines after it
    assert!(
        text.find("results: ").unwrap() < text.find("PASS ").unwrap(),
        "{text}"
    );
    let r = results(&out);
    assert_eq!(
        r["config"]["thresholds"],
        serde_json::json!(["ttft_p95 < 60s", "error_rate<5%", "rps>0"])
    );
    let got = outcomes(&out);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0]["metric"], "ttft_p95");
    assert_eq!(got[0]["op"], "<");
    assert_eq!(got[0]["limit"], 60.0);
    assert!(got[0]["value"].as_f64().unwrap() >= 0.05, "{got:?}");
    assert!(got.iter().all(|t| t["passed"] == true), "{got:?}");
    // the typed reader takes the file back
    let typed =
        perf_gate::results::LoadTestResults::read(&out.join("load_test_results.json")).unwrap();
    assert_eq!(typed.thresholds.len(), 3);
}

#[test]
fn a_crossed_threshold_exits_1_and_the_run_stays_completed() {
    let sim = sim();
    let (_dir, out, mut cmd) = command(&sim);
    let o = run(cmd.args([
        "--threshold",
        "ttft_p95<1ms",
        "--threshold",
        "error_rate<5%",
    ]));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(status(&out), "completed");
    let text = stdout(&o);
    assert!(text.contains("status: completed"), "{text}");
    let warning = text
        .lines()
        .find(|l| l.starts_with("WARNING "))
        .unwrap_or_else(|| panic!("no WARNING line: {text}"));
    assert!(
        warning.starts_with("WARNING ttft_p95<1ms crossed: 0."),
        "{text}"
    );
    assert!(warning.ends_with(" s"), "{text}");
    assert!(text.contains("PASS error_rate<5% (0.00%)"), "{text}");
    assert!(stderr(&o).contains("threshold crossed"), "{}", stderr(&o));
    let got = outcomes(&out);
    assert_eq!(got[0]["expression"], "ttft_p95<1ms");
    assert_eq!(got[0]["passed"], false);
    assert_eq!(got[0]["limit"], 0.001);
    assert!(got[0]["value"].as_f64().unwrap() >= 0.05, "{got:?}");
    assert!(
        got[0]["reason"]
            .as_str()
            .unwrap()
            .contains(" is not < 0.001 s"),
        "{got:?}"
    );
    assert_eq!(got[1]["passed"], true);
    assert_eq!(results(&out)["status"], "completed");
}

#[test]
fn a_bad_threshold_exits_2_before_any_request() {
    let sim = sim();
    let (_dir, out, mut cmd) = command(&sim);
    let o = run(cmd.args(["--threshold", "ttft_p95<2s", "--threshold", "ttft_p95<<2s"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).trim_end(),
        "load-test: --threshold \"ttft_p95<<2s\": expected METRIC OP VALUE with OP one of <, <=, >, >="
    );
    let (_dir2, _, mut cmd) = command(&sim);
    let o = run(cmd.env("THRESHOLDS", "ttft_p95<2s,ttfb_p95<2s"));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--threshold \"ttfb_p95<2s\": unknown metric \"ttfb_p95\" (known: "),
        "{}",
        stderr(&o)
    );
    let (_dir3, _, mut cmd) = command(&sim);
    let o = run(cmd.args(["--threshold", "ttft_p95<2 parsecs"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "--threshold \"ttft_p95<2 parsecs\": \"2 parsecs\" is not a duration (use ms or s)"
        ),
        "{}",
        stderr(&o)
    );
    let stats = sim.stats();
    assert_eq!((stats.accepted, stats.connections), (0, 0), "{stats:?}");
    assert!(!out.join("load_test_results.json").exists());
}
