//! Writing the load test's per-step outputs (`step_summary.json`, `summary.md`, `stats.csv`,
//! `stats_history.csv`) into the step's output directory: extras, so a file that cannot be
//! written is a warning, never a failed step.

use crate::results::{LoadTestResults, REQUESTS_FILE, RunStatus};
use crate::step::{StepOutputs, error_line};

use super::{LOAD_TEST_SUMMARY_FILE, STATS_CSV_FILE, STATS_HISTORY_CSV_FILE, STEP_SUMMARY_FILE};

/// Writes the four files for a completed or aborted run (whatever was measured; a failed run
/// gets none), atomically; `stats_history.csv` only when `requests.jsonl` is there to read.
/// Returns one warning line per file not written.
pub(crate) fn write(outputs: &StepOutputs, results: &LoadTestResults) -> Vec<String> {
    if results.status == RunStatus::Failed {
        return Vec::new();
    }
    let mut warnings = Vec::new();
    let mut warn = |what: &str, why: String| {
        let line = format!("{what} was not written: {why}");
        tracing::warn!("{line}");
        warnings.push(line);
    };
    // the results were scrubbed, unless the scrubbed text no longer fitted their type: every
    // text written is scrubbed again, as the HTML report is
    let mut summary = super::step_summary(results);
    summary.scrub();
    let written = outputs.write_json(STEP_SUMMARY_FILE, &summary);
    if let Err(e) = written {
        warn(STEP_SUMMARY_FILE, error_line(&e));
    }
    for (name, mut text) in [
        (
            LOAD_TEST_SUMMARY_FILE,
            super::load_test_summary_markdown(results),
        ),
        (STATS_CSV_FILE, super::locust_stats_csv(results)),
    ] {
        crate::secrets::scrub_string(&mut text);
        if let Err(e) = outputs.write(name, text.as_bytes()) {
            warn(name, error_line(&e));
        }
    }
    let records = outputs.path(REQUESTS_FILE);
    match std::fs::File::open(&records) {
        Ok(f) => match super::locust_stats_history_csv(results, std::io::BufReader::new(f)) {
            Ok(text) => {
                if let Err(e) = outputs.write(STATS_HISTORY_CSV_FILE, text.as_bytes()) {
                    warn(STATS_HISTORY_CSV_FILE, error_line(&e));
                }
            }
            Err(e) => warn(STATS_HISTORY_CSV_FILE, error_line(&e)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::debug!("no {REQUESTS_FILE}: {STATS_HISTORY_CSV_FILE} not written");
        }
        Err(e) => warn(
            STATS_HISTORY_CSV_FILE,
            format!("cannot open {}: {e}", records.display()),
        ),
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn claim(dir: &std::path::Path) -> StepOutputs {
        StepOutputs::claim(dir, "status.txt", &[], "failed").unwrap()
    }

    #[test]
    fn a_completed_run_gets_all_four_files_and_a_failed_one_none() {
        let dir = tempfile::tempdir().unwrap();
        let out = claim(dir.path());
        std::fs::write(
            out.path(REQUESTS_FILE),
            "{\"start_s\":0.0,\"total_s\":0.5,\"ok\":true,\"e2e_s\":0.5}\n",
        )
        .unwrap();
        let mut r = fixtures::results();
        assert!(write(&out, &r).is_empty());
        for f in [
            STEP_SUMMARY_FILE,
            LOAD_TEST_SUMMARY_FILE,
            STATS_CSV_FILE,
            STATS_HISTORY_CSV_FILE,
        ] {
            assert!(out.path(f).is_file(), "{f}");
        }
        // an aborted run: whatever was measured
        let dir = tempfile::tempdir().unwrap();
        let out = claim(dir.path());
        r.status = RunStatus::Aborted;
        assert!(write(&out, &r).is_empty());
        assert!(out.path(STATS_CSV_FILE).is_file());
        let dir = tempfile::tempdir().unwrap();
        let out = claim(dir.path());
        r.status = RunStatus::Failed;
        assert!(write(&out, &r).is_empty());
        assert!(!out.path(STATS_CSV_FILE).exists());
    }

    #[test]
    fn a_known_secret_in_the_results_is_not_written() {
        crate::secrets::register("outputs-s3cret-token");
        let dir = tempfile::tempdir().unwrap();
        let out = claim(dir.path());
        let mut r = fixtures::two_step_results();
        r.warnings
            .push("vLLM said: bad key outputs-s3cret-token".into());
        r.steps[1].server_note = Some("echoed outputs-s3cret-token".into());
        assert!(write(&out, &r).is_empty());
        for f in [STEP_SUMMARY_FILE, LOAD_TEST_SUMMARY_FILE] {
            let text = std::fs::read_to_string(out.path(f)).unwrap();
            assert!(!text.contains("s3cret"), "{f}: {text}");
            assert!(
                text.contains(crate::secrets::REDACTED) || text.contains("&lt;redacted&gt;"),
                "{f}: {text}"
            );
        }
        // the summary keeps its fields in their order
        let text = std::fs::read_to_string(out.path(STEP_SUMMARY_FILE)).unwrap();
        assert!(
            text.find("\"version\"").unwrap() < text.find("\"steps\"").unwrap(),
            "{text}"
        );
    }

    #[test]
    fn without_records_there_is_no_history_and_a_bad_record_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let out = claim(dir.path());
        let r = fixtures::results();
        assert!(write(&out, &r).is_empty());
        assert!(out.path(STATS_CSV_FILE).is_file());
        assert!(!out.path(STATS_HISTORY_CSV_FILE).exists());
        std::fs::write(out.path(REQUESTS_FILE), "garbage\n").unwrap();
        let w = write(&out, &r);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with(
                "stats_history.csv was not written: line 1 of the request records is not a record"
            ),
            "{w:?}"
        );
    }
}
