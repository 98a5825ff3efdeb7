//! `perf-decision override` without a server: what it refuses, and its `--help`.

use test_support::steps::perf_decision as cmd;

const FLAGS: [&str; 4] = [
    "override",
    "--model-name=m",
    "--version=7",
    "--decision=passed",
];

#[test]
fn override_with_an_empty_reason_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for reason in ["--reason=", "--reason=   "] {
        let out = cmd()
            .current_dir(dir.path())
            .args(FLAGS)
            .arg(reason)
            // never reached: the refusal comes first
            .env("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(
            stderr,
            "perf-decision: error: --reason must not be empty: say why the decision is overridden (it is recorded)\n"
        );
        assert!(out.stdout.is_empty());
    }
    // an override writes no decision files, not even a refused one
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn override_without_a_reason_or_a_server_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = cmd().current_dir(dir.path()).args(FLAGS).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("--reason <TEXT>"), "{stderr}");
    let out = cmd()
        .current_dir(dir.path())
        .args(FLAGS)
        .arg("--reason=noisy node")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "perf-decision: error: MLFLOW_TRACKING_URI is not set: an override is recorded in MLflow (set it or --tracking-uri)\n"
    );
    // the step's own flags are not the override's (and an empty env var counts as unset)
    let out = cmd()
        .current_dir(dir.path())
        .args(FLAGS)
        .args(["--reason=x", "--load-test-results=r.json"])
        .env("PERF_OVERRIDE_DECISION", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // an empty env var is unset, as for the step: the flag is missing, not empty
    let out = cmd()
        .current_dir(dir.path())
        .args(["override", "--version=7", "--decision=passed", "--reason=x"])
        .env("MODEL_NAME", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(
            "the following required arguments were not provided:\n  --model-name <MODEL_NAME>"
        ),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn override_help_says_what_it_records() {
    let out = cmd().args(["override", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "Usage: perf-decision override [OPTIONS] --model-name <MODEL_NAME> --version <N> --decision <DECISION> --reason <TEXT>",
        "escape hatch",
        "- passed: The version passes: it gets perf-passed, perf-failed is deleted",
        "[env: PERF_GATE_ACTOR=]",
        "default: $PERF_GATE_ACTOR, else $USER, else `unknown`",
        "--tracking-uri <URL>",
        "[env: MLFLOW_TRACKING_PASSWORD]",
        "perf_override=true, perf_decision, perf_override_reason, perf_override_actor,",
        "An override measures nothing: its run is never a baseline for a later decision.",
        "Exit codes: 0 recorded; 2 bad input",
    ] {
        assert!(
            text.contains(needle),
            "override --help lacks {needle:?}:\n{text}"
        );
    }
    // the step's help names the subcommand
    let out = cmd().arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("perf-decision <COMMAND>")
            && text.contains("override  Set a version's decision by hand (audited)"),
        "{text}"
    );
}
