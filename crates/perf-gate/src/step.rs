//! What every pipeline step (`load-test`, `perf-decision`) shares: the exit-code table, one way
//! to turn an error into one line, and the rule that a step always leaves honest files behind.
//!
//! Each step has its own typed error enum implementing [`StepFailure`]: its one mapping to an
//! [`Exit`] code. The binaries print [`error_line`] and exit with that code.
//!
//! Files ([`StepOutputs`]): before anything else a step writes a pessimistic status word
//! (`failed`, `error`) and removes the documents an earlier run left, so an exit that skips
//! every error path (a panic, a SIGKILL) never leaves an older "completed" or "passed"
//! standing; at the end it writes its documents, then the status word last, each atomically
//! (temp file + rename): a reader that sees the final status also sees the documents.

use std::path::{Path, PathBuf};

use crate::fsio;

/// The exit codes of both binaries. They are API: Argo and CI branch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exit {
    /// 0: results written (load-test), or a decision made and recorded (perf-decision).
    Done,
    /// 1: the gate failed the candidate and `--fail-on-reject` was given (perf-decision), or
    /// a `--threshold` was crossed (load-test: the results are written, status `completed`).
    Rejected,
    /// 2: bad input: flags, config, eval file, results file, an output directory that cannot
    /// be written (found before any work).
    BadInput,
    /// 3: a dependency failed or is not as expected: vLLM, Prometheus or MLflow unreachable or
    /// erroring after retries; adapter not served; model, version or alias unknown; an output
    /// file could not be written after the work (a full disk).
    Dependency,
    /// 4: aborted by SIGTERM/SIGINT; partial results are marked `aborted`.
    Aborted,
    /// 5: the measurement cannot be trusted (perf-decision): rerun the whole gate.
    Invalid,
}

impl Exit {
    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            Exit::Done => 0,
            Exit::Rejected => 1,
            Exit::BadInput => 2,
            Exit::Dependency => 3,
            Exit::Aborted => 4,
            Exit::Invalid => 5,
        }
    }

    /// The exit code for a process status (`None` for a status outside the table).
    pub fn from_code(code: u8) -> Option<Exit> {
        [
            Exit::Done,
            Exit::Rejected,
            Exit::BadInput,
            Exit::Dependency,
            Exit::Aborted,
            Exit::Invalid,
        ]
        .into_iter()
        .find(|e| e.code() == code)
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

/// The exit-code table as help text, for `--help` of both binaries (README has the same table).
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  done: results written (load-test), or a decision made and recorded (perf-decision)
  1  rejected: the gate failed and --fail-on-reject was given (perf-decision), or a
     --threshold was crossed (load-test; results written, status completed)
  2  bad input: flags, config, eval file, results file, an output directory that cannot be
     written (checked before any work)
  3  a dependency failed: vLLM, Prometheus or MLflow unreachable or erroring after retries;
     adapter not served; model, version or alias unknown; an output file that could not be
     written after the work
  4  aborted by a signal (SIGTERM/SIGINT); partial results are marked `aborted`
  5  measurement invalid (perf-decision): rerun the whole gate (load and decision)";

/// The record of a step's effective flags (values after command line > env var > config file >
/// default, and where each came from; no secret), written beside its documents.
pub const CONFIG_RECORD_FILE: &str = "config.json";

/// A step's failure: its one mapping to the exit-code table.
pub trait StepFailure: std::error::Error {
    /// The documented exit code for this failure.
    fn exit(&self) -> Exit;
}

/// An error and its causes on one line (`message: cause: cause`), as anyhow's `{:#}` prints
/// them; a cause whose text the line already holds is not repeated (a library that puts its
/// source into its own message as well would otherwise print it twice).
pub fn error_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !part.is_empty() && !line.contains(&part) {
            line.push_str(": ");
            line.push_str(&part);
        }
        source = s.source();
    }
    line
}

/// The output directory of a step and the files it owns there.
#[derive(Debug, Clone)]
pub struct StepOutputs {
    dir: PathBuf,
    status_file: &'static str,
    documents: &'static [&'static str],
}

impl StepOutputs {
    /// Creates `dir`, writes `pending` to the status file and removes the `documents` (and their
    /// leftover temp files) an earlier run left. Writing the status is the probe that the
    /// directory takes files (a temp file renamed into place, as every document is later);
    /// removing the documents proves nothing stands where one will go. Fails when either does
    /// not work: the step could not write its result either, so it must not start its work.
    pub fn claim(
        dir: &Path,
        status_file: &'static str,
        documents: &'static [&'static str],
        pending: &str,
    ) -> Result<Self, UnusableOutputDir> {
        let out = StepOutputs {
            dir: dir.to_path_buf(),
            status_file,
            documents,
        };
        let unusable = |source| UnusableOutputDir {
            dir: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir)
            .map_err(|source| OutputError {
                path: dir.display().to_string(),
                source,
            })
            .map_err(unusable)?;
        out.write_status(pending).map_err(unusable)?;
        out.remove_documents().map_err(unusable)?;
        Ok(out)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of `name` in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes one document atomically.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), OutputError> {
        let path = self.path(name);
        fsio::write_atomic(&path, bytes).map_err(|source| OutputError {
            path: path.display().to_string(),
            source,
        })
    }

    /// Writes one document as pretty JSON, atomically.
    pub fn write_json<T: serde::Serialize>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<(), OutputError> {
        let path = self.path(name);
        fsio::write_json_atomic(&path, value).map_err(|source| OutputError {
            path: path.display().to_string(),
            source,
        })
    }

    /// Writes the final status word: call it last, after every document.
    pub fn finish(&self, status: &str) -> Result<(), OutputError> {
        self.write_status(status)
    }

    /// Best effort after a failure: the status says `status` and no document of this run or
    /// an earlier one is left claiming more. Problems are logged, not returned (the step is
    /// failing already).
    pub fn abandon(&self, status: &str) {
        // both, whatever the first does: a status that cannot be written must not keep the
        // documents from going (they would claim a decision the status does not)
        let written = self.write_status(status);
        let removed = self.remove_documents();
        for e in [written.err(), removed.err()].into_iter().flatten() {
            tracing::warn!(error = %error_line(&e), "cannot mark the output directory");
        }
    }

    fn write_status(&self, word: &str) -> Result<(), OutputError> {
        self.write(self.status_file, format!("{word}\n").as_bytes())
    }

    fn remove_documents(&self) -> Result<(), OutputError> {
        for name in self.documents {
            let path = self.path(name);
            for p in [fsio::tmp_path(&path), path] {
                match std::fs::remove_file(&p) {
                    Ok(()) => tracing::debug!(path = %p.display(), "removed an earlier run's file"),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => {
                        return Err(OutputError {
                            path: p.display().to_string(),
                            source,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// The output directory cannot be used, found before the step did any work: bad input (exit 2),
/// reported with the flag that names it.
#[derive(Debug, thiserror::Error)]
#[error("--output-dir {dir} cannot be used")]
pub struct UnusableOutputDir {
    /// The directory as given.
    pub dir: String,
    /// What failed in it.
    #[source]
    pub source: OutputError,
}

/// A file in the output directory could not be written or removed.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}")]
pub struct OutputError {
    /// The file or directory.
    pub path: String,
    /// Cause.
    #[source]
    pub source: std::io::Error,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);
    #[derive(Debug, thiserror::Error)]
    #[error("middle: inner")]
    struct Middle(#[source] Inner);
    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner;

    #[test]
    fn one_line_with_each_cause_once() {
        assert_eq!(error_line(&Outer(Middle(Inner))), "outer: middle: inner");
    }

    #[test]
    fn codes_are_the_documented_table() {
        let codes: Vec<u8> = [
            Exit::Done,
            Exit::Rejected,
            Exit::BadInput,
            Exit::Dependency,
            Exit::Aborted,
            Exit::Invalid,
        ]
        .map(Exit::code)
        .to_vec();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5]);
        for c in 0..=5 {
            assert_eq!(Exit::from_code(c).map(Exit::code), Some(c));
            assert!(EXIT_CODES_HELP.contains(&format!("\n  {c}  ")));
        }
        assert_eq!(Exit::from_code(6), None);
    }

    #[test]
    fn abandoning_removes_the_documents_even_when_the_status_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let out = StepOutputs::claim(d, "status.txt", &["doc.json"], "error").unwrap();
        out.write_json("doc.json", &serde_json::json!({"decision": "passed"}))
            .unwrap();
        // something took the status file's place: it cannot be replaced
        std::fs::remove_file(d.join("status.txt")).unwrap();
        std::fs::create_dir(d.join("status.txt")).unwrap();
        std::fs::write(d.join("status.txt").join("x"), "").unwrap();
        out.abandon("error");
        assert!(
            !d.join("doc.json").exists(),
            "a document outlived its failed step"
        );
    }

    #[test]
    fn a_claimed_directory_holds_only_the_pending_status() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("out");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("doc.json"), "old").unwrap();
        std::fs::write(d.join("doc.json.tmp"), "half").unwrap();
        std::fs::write(d.join("status.txt"), "passed\n").unwrap();
        let out = StepOutputs::claim(&d, "status.txt", &["doc.json"], "error").unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("status.txt")).unwrap(),
            "error\n"
        );
        assert!(!d.join("doc.json").exists() && !d.join("doc.json.tmp").exists());

        out.write_json("doc.json", &serde_json::json!({"k": 1}))
            .unwrap();
        out.finish("passed").unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("status.txt")).unwrap(),
            "passed\n"
        );

        out.abandon("error");
        assert_eq!(
            std::fs::read_to_string(d.join("status.txt")).unwrap(),
            "error\n"
        );
        assert!(!d.join("doc.json").exists());
    }

    #[test]
    fn an_unwritable_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "x").unwrap();
        let e = StepOutputs::claim(&file.join("out"), "s", &[], "error").unwrap_err();
        assert!(
            e.source.path.ends_with("out") && e.dir.ends_with("out"),
            "{e}"
        );
    }
}
