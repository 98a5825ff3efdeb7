//! Exit codes shared by both binaries. They are API: Argo and CI branch on them.
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | done: results written (load-test), or a decision made and recorded (perf-decision) |
//! | 1 | rejected: the gate failed and `--fail-on-reject` was given (perf-decision) |
//! | 2 | bad input: flags, config, eval file, results file |
//! | 3 | a dependency failed or is not as expected (vLLM, Prometheus, MLflow; adapter, model, version, alias unknown) |
//! | 4 | aborted by a signal (SIGTERM/SIGINT); partial results are marked `aborted` |

/// Done: results written, or a decision made and recorded.
pub const SUCCESS: u8 = 0;
/// The gate rejected the candidate and `--fail-on-reject` was given.
pub const REJECTED: u8 = 1;
/// Bad input: flags, config, eval file, results file.
pub const BAD_INPUT: u8 = 2;
/// A dependency (vLLM, Prometheus, MLflow) failed or is not as expected.
pub const DEPENDENCY: u8 = 3;
/// Aborted by SIGTERM/SIGINT.
pub const ABORTED: u8 = 4;

/// The exit-code table as help text, for `--help` of both binaries.
pub const HELP_TABLE: &str = "\
Exit codes:
  0  done: results written (load-test), or a decision made and recorded (perf-decision)
  1  rejected: the gate failed and --fail-on-reject was given (perf-decision)
  2  bad input: flags, config, eval file, results file
  3  a dependency failed: vLLM, Prometheus or MLflow unreachable or erroring after retries;
     adapter not served; model, version or alias unknown
  4  aborted by a signal (SIGTERM/SIGINT); partial results are marked `aborted`";
