//! `perf-decision`: step 2 of the vLLM LoRA performance gate (see `--help`).

use perf_decision::cli;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use perf_gate::decision::{self, PerfDecision, Verdict};
use perf_gate::{exit, logging};

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    logging::init(cli.log_format == cli::LogFormat::Json);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("perf-decision: error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::DEPENDENCY);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("perf-decision: error: {e:#}");
            ExitCode::from(exit::BAD_INPUT)
        }
    }
}

/// Parses the command line (an empty env var counts as unset). A refused command line still
/// marks the output directory (found leniently) as undecided, so an older "passed" cannot
/// outlive it; `--help` and `--version` touch nothing.
fn parse() -> Result<cli::Cli, ExitCode> {
    let cmd = perf_gate::cli::empty_env_as_unset(cli::Cli::command());
    let parsed = cmd
        .try_get_matches()
        .and_then(|m| cli::Cli::from_arg_matches(&m));
    parsed.map_err(|e| {
        use clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand as BareHelp;
        use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
        if !matches!(e.kind(), DisplayHelp | DisplayVersion | BareHelp) {
            let dir = cli::lenient_output_dir(std::env::args_os(), std::env::var_os("OUTPUT_DIR"));
            decision::write_error_status(&dir);
        }
        // clap's own message and code: 2 for a refused command line, 0 for --help
        let _ = e.print();
        ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(exit::BAD_INPUT))
    })
}

/// Runs the step and maps its outcome to the documented exit code.
async fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    let fail_on_reject = cli.fail_on_reject;
    let output_dir = cli.output_dir.clone();
    // before anything else: from here on, an exit that skips the error path (a panic, SIGKILL)
    // leaves `error`, never an older decision
    if let Err(e) = decision::mark_undecided(&output_dir) {
        eprintln!("perf-decision: error: {:#}", anyhow::Error::new(e));
        return Ok(ExitCode::from(exit::BAD_INPUT));
    }
    let config = match cli.into_config() {
        Ok(c) => c,
        Err(msg) => {
            decision::write_error_status(&output_dir);
            eprintln!("perf-decision: error: {msg}");
            return Ok(ExitCode::from(exit::BAD_INPUT));
        }
    };
    let cancel = logging::cancel_on_signal();
    match decision::run_step(&config, &cancel).await {
        Ok(doc) => {
            print_summary(&doc, &config.output_dir);
            let rejected = doc.decision == Verdict::Failed && fail_on_reject;
            Ok(ExitCode::from(if rejected {
                exit::REJECTED
            } else {
                exit::SUCCESS
            }))
        }
        Err(e) => {
            let code = e.exit_code();
            eprintln!("perf-decision: error: {:#}", anyhow::Error::new(e));
            Ok(ExitCode::from(code))
        }
    }
}

fn print_summary(doc: &PerfDecision, output_dir: &std::path::Path) {
    let baseline = match &doc.baseline {
        Some(b) => format!(
            "; baseline {}",
            b.run_id
                .as_deref()
                .map(|r| format!("run {r}"))
                .or_else(|| b.file.clone())
                .unwrap_or_else(|| "file".into())
        ),
        None => String::new(),
    };
    println!(
        "decision: {} ({} mode{baseline})",
        doc.decision.as_str(),
        doc.mode.as_str()
    );
    for c in &doc.checks {
        let mark = if c.passed { "pass" } else { "FAIL" };
        println!("  [{mark}] {}", c.reason);
    }
    if !doc.warnings.is_empty() {
        println!("warnings ({}):", doc.warnings.len());
        for w in &doc.warnings {
            println!("  - {w}");
        }
    }
    if let Some(m) = &doc.mlflow {
        match (&m.run_url, &m.alias_set) {
            (Some(url), Some(alias)) => println!(
                "mlflow: run {url}; alias {alias} -> version {}",
                doc.candidate_version.as_deref().unwrap_or("?")
            ),
            _ => println!("mlflow: dry run, nothing written"),
        }
    }
    println!(
        "wrote {} and {}",
        output_dir.join(decision::DECISION_FILE).display(),
        output_dir.join(decision::STATUS_FILE).display()
    );
}
