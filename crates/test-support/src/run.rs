//! Running the gate's binaries from tests as a pod would: a rendered step's exact argv and
//! environment (nothing inherited but `PATH` and `HOME`), and finding a binary of another crate
//! of the workspace next to the test's own.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::manifest::RenderedStep;

/// The workspace binary `name` next to `own` (a `CARGO_BIN_EXE_*` path, i.e. the target dir's
/// profile directory). An error says how to build it when it is missing.
pub fn sibling_bin(own: &Path, name: &str) -> Result<PathBuf, String> {
    let dir = own
        .parent()
        .ok_or_else(|| format!("{} has no directory", own.display()))?;
    let bin = dir.join(name);
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} is not built: this test runs the workspace's binaries; run `cargo build --bins` (or `cargo nextest run --workspace`) first",
            bin.display()
        ))
    }
}

/// What a step did.
#[derive(Debug, Clone)]
pub struct StepRun {
    /// Exit code (`-1` when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `step` (its `argv[0]` a path: see [`RenderedStep::with_bin_dir`]) with exactly its
/// environment plus `PATH` and `HOME`, and writes the command and its output to `log`.
pub fn run_step(step: &RenderedStep, log: &Path) -> StepRun {
    let (bin, args) = step
        .argv
        .split_first()
        .expect("invariant: a rendered step has a command");
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env_clear()
        .envs(step.env.iter().map(|(k, v)| (k, v)));
    for keep in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(keep) {
            cmd.env(keep, v);
        }
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    let run = StepRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let env: Vec<String> = step.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let text = format!(
        "# {}\nenv -i PATH=... HOME=... {} {}\n# exit {}\n--- stdout\n{}--- stderr\n{}",
        step.origin,
        env.join(" "),
        step.argv.join(" "),
        run.code,
        run.stdout,
        run.stderr
    );
    std::fs::write(log, text).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    run
}
