//! `--progress` against `vllm-sim`: in a pseudo-terminal (util-linux `script`) stderr gets a
//! live bar redrawn in place (`\r`, erase line) with requests done, req/s, tok/s, P90, error %
//! and ETA, a sweep's step in front, and log lines above it, not through it; through a pipe
//! (Kubernetes logs) it gets today's plain progress lines, with no escape sequence and no `\r`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use test_support::sim::{Sim, eval_file};
use test_support::steps::{load_test, run, stderr};

fn sim() -> Sim {
    Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(10),
        ..Default::default()
    })
}

/// `load-test` against `sim` with `args`, its output in `dir/out`.
fn args(sim: &Sim, dir: &Path, args: &[&str]) -> Vec<String> {
    let eval = eval_file(dir, 6);
    let mut all: Vec<String> = [
        "--vllm-url",
        &sim.url,
        "--adapter-name",
        "candidate",
        "--eval-data-path",
        eval.to_str().unwrap(),
        "--output-dir",
        dir.join("out").to_str().unwrap(),
        "--poll-interval",
        "0",
        "--max-tokens",
        "20",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    all.extend(args.iter().map(|s| s.to_string()));
    all
}

/// Runs `load-test` with `args` in a pseudo-terminal (`script`), returns what the terminal
/// showed (stderr and stdout, as the terminal got them).
fn in_terminal(args: &[String]) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let bin = test_support::steps::bin("load-test");
    let cmd: Vec<String> = std::iter::once(quote(bin.to_str().unwrap()))
        .chain(args.iter().map(|a| quote(a)))
        .collect();
    let out = Command::new("script")
        .args(["-qec", &cmd.join(" "), "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SHELL", "/bin/sh")
        .env("TERM", "xterm")
        // log lines without colour: every escape sequence left is the bar's
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .expect("util-linux `script` runs (apt-get install bsdutils)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", stderr(&out));
    text
}

/// The line of `text` that holds `needle` (lines end at `\n`; `\r` redraws stay inside).
fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.split('\n')
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in {text:?}"))
}

#[test]
fn serial_a_terminal_gets_a_live_bar_redrawn_in_place() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let shown = in_terminal(&args(
        &sim,
        dir.path(),
        &["--num-requests", "24", "--concurrency", "2"],
    ));
    for field in [
        "/24 req, ",
        " req/s, ",
        " tok/s, ",
        ", p90 ",
        ", err ",
        ", ETA ",
    ] {
        assert!(shown.contains(field), "{field:?} in {shown:?}");
    }
    // redrawn in place: carriage return and erase-line, more than once
    let redraws = shown.matches("\r\x1b[2K").count();
    assert!(redraws >= 3, "{redraws} redraws in {shown:?}");
    // a figure once requests finished, not only the empty start
    let p90_known = shown
        .match_indices(", p90 ")
        .any(|(i, m)| shown[i + m.len()..].starts_with(|c: char| c.is_ascii_digit()));
    assert!(p90_known, "a P90 once requests finished: {shown:?}");
    // the last figures stay, on their own line; the log line after them is whole
    let last = line_with(&shown, "24/24 req, ");
    assert!(last.contains("err 0.0%"), "{last:?}");
    let finished = line_with(&shown, "load finished");
    assert!(!finished.contains("req/s"), "garbled: {finished:?}");
    // the bar replaces the plain progress lines
    assert!(!shown.contains("planned="), "{shown:?}");
}

#[test]
fn serial_a_sweep_shows_its_step_in_the_bar() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let shown = in_terminal(&args(
        &sim,
        dir.path(),
        &["--steps", "1,2", "--step-duration", "1"],
    ));
    for step in ["step 1/2 at 1 in flight ", "step 2/2 at 2 in flight "] {
        let l = line_with(&shown, step);
        // a timed load: time elapsed of its length, requests so far, time left
        assert!(l.contains("/1s ("), "{l:?}");
        assert!(l.contains(" req/s, ") && l.contains(", ETA "), "{l:?}");
    }
}

#[test]
fn without_a_terminal_progress_is_plain_lines_or_nothing() {
    let sim = sim();
    for (mode, lines) in [
        ("auto", true),
        ("bar", true),
        ("lines", true),
        ("off", false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = run(load_test()
            .args(args(
                &sim,
                dir.path(),
                &["--num-requests", "16", "--concurrency", "2"],
            ))
            .args(["--progress-interval", "0.2", "--progress", mode]));
        let err = stderr(&out);
        assert!(out.status.success(), "{err}");
        assert_eq!(
            err.contains("progress") && err.contains("planned=16"),
            lines,
            "{mode}: {err}"
        );
        assert!(!err.contains('\r'), "{mode}: {err:?}");
        assert!(!err.contains('\x1b'), "{mode}: {err:?}");
        assert!(!err.contains("req/s,"), "{mode}: {err:?}");
    }
    // a --config file's key, as any flag's
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("load.yaml");
    std::fs::write(&config, "progress: \"off\"\nprogress-interval: 0.2\n").unwrap();
    let out = run(load_test()
        .args(args(
            &sim,
            dir.path(),
            &["--num-requests", "16", "--concurrency", "2"],
        ))
        .arg("--config")
        .arg(&config));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("planned="), "{err}");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/config.json")).unwrap())
            .unwrap();
    assert!(record.to_string().contains("\"off\""), "{record}");
}
