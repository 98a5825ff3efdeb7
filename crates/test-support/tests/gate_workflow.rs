//! The gate's WorkflowTemplate (`workflows/vllm-perf-gate.yaml`) walked as Argo walks it, with a
//! scripted executor standing in for the pods: which steps run, which are skipped, how the
//! workflow ends and what its outputs say, for each decision the first and second attempts can
//! reach (passed, failed with and without fail-on-reject, invalid, error, a failed load).
//!
//! The containers' command lines are the rendered ones (the same as the sim end-to-end test
//! runs); the verdict step's exit code is perf-decision's own table for `--exit-for-status`
//! (passed 0, failed 1, invalid 5, anything else 3; crates/perf-decision/tests/cli.rs runs it).

use std::collections::BTreeMap;
use std::path::Path;

use test_support::manifest::argo::{self, ArgoFile, Executor, Leaf, Outcome, Phase};

/// One attempt of the gate as the scripted pods play it.
#[derive(Debug, Clone, Copy)]
enum Attempt {
    /// load-test exits 0, perf-decision exits `exit` with `status` in perf_status.txt.
    Decided { exit: i32, status: &'static str },
    /// load-test exits 3 (vLLM unreachable), status `failed`.
    LoadFailed,
}

use Attempt::{Decided, LoadFailed};

const PASSED: Attempt = Decided {
    exit: 0,
    status: "passed",
};
const INVALID: Attempt = Decided {
    exit: 5,
    status: "invalid",
};

#[derive(Default)]
struct Script {
    attempts: Vec<Attempt>,
    /// (node, argv) of every container run, in order.
    ran: Vec<(String, Vec<String>)>,
    /// (node, duration) of every suspend.
    waited: Vec<(String, String)>,
    /// Files written, by (node, pod path).
    files: BTreeMap<(String, String), String>,
}

impl Script {
    fn attempt(&self, node: &str) -> Attempt {
        let n: usize = node
            .strip_prefix("attempt-")
            .and_then(|r| r.split('.').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{node} is no attempt's"));
        self.attempts[n - 1]
    }
}

/// perf-decision --exit-for-status.
fn exit_for_status(word: &str) -> i32 {
    match word {
        "passed" => 0,
        "failed" => 1,
        "invalid" => 5,
        _ => 3,
    }
}

impl Executor for Script {
    fn run(&mut self, leaf: &Leaf) -> Result<i32, String> {
        let node = leaf.node.clone();
        self.ran.push((node.clone(), leaf.step.argv.clone()));
        let attempt = leaf
            .node
            .starts_with("attempt-")
            .then(|| self.attempt(&node));
        let files = &mut self.files;
        let mut write = |path: &str, text: &str| {
            files.insert((node.clone(), path.to_string()), format!("{text}\n"));
        };
        let code = match leaf.template.as_str() {
            "resolve-candidate" => {
                write("/output/candidate_version.txt", "7");
                0
            }
            "load-test" => match attempt.expect("an attempt's step") {
                Decided { .. } => {
                    write("/output/load_test_status.txt", "completed");
                    write("/output/load_test_results.json", "{}");
                    0
                }
                LoadFailed => {
                    write("/output/load_test_status.txt", "failed");
                    3
                }
            },
            "perf-decision" => {
                // it judges the file the same attempt's load-test wrote
                let input = &leaf.inputs[0];
                let from = input.from.as_ref().expect("passed from the load-test step");
                let prefix = node.split('.').next().unwrap();
                assert_eq!(from.node, format!("{prefix}.load-test"));
                assert_eq!(from.path, "/output/load_test_results.json");
                assert_eq!(input.path, "/input/load_test_results.json");
                let Some(Decided { exit, status }) = attempt else {
                    panic!("perf-decision ran after a failed load")
                };
                write("/output/perf_status.txt", status);
                exit
            }
            "verdict" => {
                let [_, arg] = leaf.step.argv.as_slice() else {
                    panic!("{:?}", leaf.step.argv)
                };
                exit_for_status(arg.strip_prefix("--exit-for-status=").unwrap())
            }
            other => panic!("no script for template {other}"),
        };
        Ok(code)
    }

    fn read(&mut self, leaf: &Leaf, path: &str) -> Result<Option<String>, String> {
        Ok(self
            .files
            .get(&(leaf.node.clone(), path.to_string()))
            .cloned())
    }

    fn suspend(&mut self, node: &str, duration: &str) -> Result<(), String> {
        self.waited.push((node.to_string(), duration.to_string()));
        Ok(())
    }
}

fn template() -> ArgoFile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows/vllm-perf-gate.yaml");
    argo::load(&path)
        .unwrap()
        .into_iter()
        .find(|f| f.doc.kind == "WorkflowTemplate")
        .unwrap()
}

/// Runs the template with the scripted attempts; `fail_on_reject` as the parameter.
fn run(attempts: &[Attempt], fail_on_reject: bool) -> (Outcome, Script) {
    let wft = template();
    let set: Vec<(String, String)> = [
        ("vllm-url", "http://vllm:8000"),
        ("adapter-name", "candidate"),
        ("eval-data-bucket", "b"),
        ("eval-data-key", "k/eval.jsonl"),
        ("eval-data-version", "3"),
        ("prometheus-url", "http://prometheus:9090"),
        ("mlflow-tracking-uri", "http://mlflow:80"),
        ("model-name", "m"),
        (
            "fail-on-reject",
            if fail_on_reject { "true" } else { "false" },
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let params = wft.parameters(&set).unwrap();
    let mut script = Script {
        attempts: attempts.to_vec(),
        ..Script::default()
    };
    let outcome = wft
        .run(&params, &mut script)
        .unwrap_or_else(|e| panic!("{e}"));
    (outcome, script)
}

fn outputs(o: &Outcome) -> Vec<(&str, &str)> {
    o.outputs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn a_passed_candidate_runs_one_attempt_with_the_version_resolved_before_the_load() {
    let (o, script) = run(&[PASSED], false);
    assert_eq!(
        o.trace(),
        [
            "resolve-candidate Succeeded",
            "attempt-1.load-test Succeeded",
            "attempt-1.perf-decision Succeeded",
            "attempt-1.verdict Skipped",
            "quiet-wait Skipped",
            "attempt-2 Skipped",
        ]
    );
    assert_eq!(o.phase, Phase::Succeeded);
    assert_eq!(
        outputs(&o),
        [
            ("candidate-version", "7"),
            ("load-test-status", "completed"),
            ("perf-status", "passed"),
        ]
    );
    // the resolve step and the decision, as rendered
    let (_, resolve) = &script.ran[0];
    assert_eq!(
        resolve,
        &[
            "perf-decision",
            "--resolve-candidate",
            "--model-name=m",
            "--candidate-alias=eval-passed",
            "--output-dir=/output"
        ]
    );
    let (_, decide) = &script.ran[2];
    assert!(
        decide.contains(&"--candidate-version=7".to_string()),
        "{decide:?}"
    );
    assert!(
        !decide.iter().any(|a| a.starts_with("--candidate-alias")),
        "{decide:?}"
    );
    assert_eq!(
        o.artifacts["load-test-results"].node, "attempt-1.load-test",
        "{:?}",
        o.artifacts
    );
    assert!(script.waited.is_empty());
}

#[test]
fn a_failed_decision_ends_the_workflow_only_with_fail_on_reject() {
    // fail-on-reject off: perf-decision exits 0 on `failed`, the verdict step does not run
    let (o, _) = run(
        &[Decided {
            exit: 0,
            status: "failed",
        }],
        false,
    );
    assert_eq!(o.phase, Phase::Succeeded);
    assert_eq!(o.node("attempt-1.verdict").unwrap().phase, Phase::Skipped);
    assert_eq!(o.outputs["perf-status"], "failed");

    // on: perf-decision exits 1 (continueOn keeps the attempt going), the verdict ends it with 1
    let (o, script) = run(
        &[Decided {
            exit: 1,
            status: "failed",
        }],
        true,
    );
    assert_eq!(
        o.trace(),
        [
            "resolve-candidate Succeeded",
            "attempt-1.load-test Succeeded",
            "attempt-1.perf-decision Failed",
            "attempt-1.verdict Failed",
        ]
    );
    assert_eq!(o.phase, Phase::Failed);
    assert_eq!(o.node("attempt-1.verdict").unwrap().exit_code, Some(1));
    assert_eq!(
        script.ran.last().unwrap().1,
        ["perf-decision", "--exit-for-status=failed"]
    );
    assert_eq!(o.outputs["perf-status"], "failed");
}

#[test]
fn an_invalid_measurement_reruns_the_whole_gate_once_after_a_quiet_wait() {
    let (o, script) = run(&[INVALID, PASSED], false);
    assert_eq!(
        o.trace(),
        [
            "resolve-candidate Succeeded",
            "attempt-1.load-test Succeeded",
            "attempt-1.perf-decision Failed",
            "attempt-1.verdict Skipped",
            "quiet-wait Succeeded",
            "attempt-2.load-test Succeeded",
            "attempt-2.perf-decision Succeeded",
            "attempt-2.verdict Skipped",
        ]
    );
    assert_eq!(o.phase, Phase::Succeeded);
    assert_eq!(
        script.waited,
        [("quiet-wait".to_string(), "2m".to_string())]
    );
    // the rerun judges the same resolved version; the workflow's outputs are the rerun's
    assert!(
        script.ran[4]
            .1
            .contains(&"--candidate-version=7".to_string())
    );
    assert_eq!(o.outputs["perf-status"], "passed");
    assert_eq!(o.artifacts["load-test-results"].node, "attempt-2.load-test");
    assert_eq!(o.artifacts["perf-decision"].node, "attempt-2.perf-decision");
    assert_eq!(script.ran.len(), 5, "resolved once: {:?}", script.ran);
}

#[test]
fn a_second_invalid_measurement_fails_the_workflow_with_exit_5() {
    let (o, script) = run(&[INVALID, INVALID], false);
    assert_eq!(
        &o.trace()[4..],
        [
            "quiet-wait Succeeded",
            "attempt-2.load-test Succeeded",
            "attempt-2.perf-decision Failed",
            "attempt-2.verdict Failed",
        ]
    );
    assert_eq!(o.phase, Phase::Failed);
    assert_eq!(o.node("attempt-2.verdict").unwrap().exit_code, Some(5));
    assert_eq!(
        script.ran.last().unwrap().1,
        ["perf-decision", "--exit-for-status=invalid"]
    );
    assert_eq!(o.outputs["perf-status"], "invalid");
}

#[test]
fn an_undecided_gate_fails_with_exit_3_and_is_not_rerun() {
    let (o, script) = run(
        &[Decided {
            exit: 3,
            status: "error",
        }],
        false,
    );
    assert_eq!(o.phase, Phase::Failed);
    assert_eq!(
        o.trace().last().map(String::as_str),
        Some("attempt-1.verdict Failed")
    );
    assert_eq!(o.node("attempt-1.verdict").unwrap().exit_code, Some(3));
    assert!(script.waited.is_empty());
    assert!(o.node("attempt-2").is_none(), "no rerun: {:?}", o.trace());
}

#[test]
fn a_failed_load_ends_the_workflow_at_once_and_leaves_no_stale_verdict() {
    let (o, _) = run(&[LoadFailed], false);
    assert_eq!(
        o.trace(),
        ["resolve-candidate Succeeded", "attempt-1.load-test Failed"]
    );
    assert_eq!(o.phase, Phase::Failed);
    assert_eq!(o.outputs["load-test-status"], "failed");
    assert_eq!(o.outputs["perf-status"], "error");

    // the rerun's load failed after an invalid first attempt: perf-status is not attempt 1's
    let (o, _) = run(&[INVALID, LoadFailed], false);
    assert_eq!(o.phase, Phase::Failed);
    assert_eq!(
        o.trace().last().map(String::as_str),
        Some("attempt-2.load-test Failed")
    );
    assert_eq!(o.outputs["perf-status"], "error", "{:?}", o.outputs);
}

#[test]
fn a_condition_on_a_skipped_step_is_an_error_not_a_guess() {
    // a step after attempt-2 reading its outputs in a run that skipped it: Argo would leave the
    // tag unresolved (and fail the `when`, or wait for it forever)
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows/vllm-perf-gate.yaml"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wf.yaml");
    let extra = "        - - name: after\n            template: quiet-wait\n            when: \"{{steps.attempt-2.outputs.parameters.perf-status}} == invalid\"\n            arguments:\n              parameters:\n                - name: duration\n                  value: \"1s\"\n";
    let broken = text.replacen(
        "                - name: rerun-on-invalid\n                  value: \"false\"\n",
        &format!(
            "                - name: rerun-on-invalid\n                  value: \"false\"\n{extra}"
        ),
        1,
    );
    assert!(broken.contains("name: after"));
    std::fs::write(&path, broken).unwrap();
    let wft = argo::load(&path)
        .unwrap()
        .into_iter()
        .find(|f| f.doc.kind == "WorkflowTemplate")
        .unwrap();
    let params = wft
        .parameters(
            &[
                "vllm-url",
                "adapter-name",
                "eval-data-bucket",
                "eval-data-key",
                "eval-data-version",
                "prometheus-url",
                "mlflow-tracking-uri",
                "model-name",
            ]
            .map(|k| (k.to_string(), "x".to_string())),
        )
        .unwrap();
    let mut script = Script {
        attempts: vec![PASSED],
        ..Script::default()
    };
    let e = wft.run(&params, &mut script).unwrap_err().to_string();
    assert!(
        e.contains(
            "step after: when `{{steps.attempt-2.outputs.parameters.perf-status}} == invalid`"
        ),
        "{e}"
    );
    assert!(
        e.contains("step `attempt-2` was skipped: it has no outputs"),
        "{e}"
    );
}
