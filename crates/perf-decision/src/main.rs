//! `perf-decision`: step 2 of the vLLM LoRA performance gate (see `--help`).

use std::process::ExitCode;

use perf_decision::cli::{self, Cli, Command, OverrideArgs};
use perf_gate::decide::{self, DecideConfig, MlflowMode, OverrideConfig, PerfDecision};
use perf_gate::decision::Verdict;
use perf_gate::mlflow::MlflowError;
use perf_gate::secrets::scrub;
use perf_gate::step::{Exit, StepFailure, error_line};
use perf_gate::transport;
use perf_gate_cli::{config_file, env, logging, signals};

fn main() -> ExitCode {
    let (mut cli, effective) = match parse() {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let command = cli.command.take();
    logging::init(match &command {
        Some(Command::Override(o)) => o.log_format,
        None => cli.log_format,
    });
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("perf-decision: error: cannot start the async runtime: {e}");
            return Exit::Dependency.into();
        }
    };
    match command {
        Some(Command::Override(o)) => runtime.block_on(run_override(o)).into(),
        None => runtime.block_on(run(cli, effective)).into(),
    }
}

/// Parses the command line (an empty env var counts as unset). A refused command line still
/// marks the output directory (found leniently) as undecided, so an older "passed" cannot
/// outlive it; `--help` and `--version` touch nothing. `--config`'s file is layered under the
/// command line and env vars; the effective values come back for `config.json`.
fn parse() -> Result<(Cli, serde_json::Value), ExitCode> {
    use clap::{CommandFactory, FromArgMatches};
    // `--exit-for-status` stands alone, before clap: it reads no env var (the shell or pod
    // that runs it may set any of the step's) and never touches an output directory
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if let Some(status) = exit_for_status_arg(&args) {
        return Err(match status {
            Ok(status) => exit_for_status(&status).into(),
            Err(why) => {
                eprintln!("perf-decision: error: {why}");
                ExitCode::from(Exit::BadInput.code())
            }
        });
    }
    env::register_secret_args(&Cli::command(), std::env::args_os());
    let layered =
        config_file::get_matches_from(env::empty_env_as_unset(Cli::command()), std::env::args_os());
    layered
        .and_then(|l| Ok((Cli::from_arg_matches(&l.matches)?, l.effective)))
        .map_err(|e| {
            // an override writes no decision files: its output directory is not touched
            let overriding = std::env::args_os().nth(1).is_some_and(|a| a == "override");
            if !env::is_help_or_version(&e) && !overriding {
                // the env var beats the config file's value, as in a full parse
                let from_file =
                    config_file::lenient_value(&Cli::command(), std::env::args_os(), "output-dir");
                let dir = cli::lenient_output_dir(
                    std::env::args_os(),
                    std::env::var_os("OUTPUT_DIR")
                        .filter(|v| !v.is_empty())
                        .or(from_file.map(Into::into)),
                );
                if let Ok(outputs) = decide::claim_outputs(&dir) {
                    outputs.abandon(decide::STATUS_ERROR);
                }
            }
            // clap's own message (scrubbed) and code: 2 for a refused command line, 0 for --help
            env::print_error(&e);
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(Exit::BadInput.code()))
        })
}

/// The value of `--exit-for-status` when the command line has it (`None` otherwise); an
/// error when it has no value or comes with anything else.
fn exit_for_status_arg(args: &[std::ffi::OsString]) -> Option<Result<String, String>> {
    const FLAG: &str = "--exit-for-status";
    let at = args.iter().position(|a| {
        let a = a.to_string_lossy();
        a == FLAG || a.starts_with("--exit-for-status=")
    })?;
    let arg = args[at].to_string_lossy();
    let (value, used) = match arg.strip_prefix("--exit-for-status=") {
        Some(v) => (Some(v.to_string()), 1),
        None => (
            args.get(at + 1).map(|v| v.to_string_lossy().into_owned()),
            2,
        ),
    };
    let others: Vec<_> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| !(at..at + used).contains(i))
        .map(|(_, a)| a.to_string_lossy().into_owned())
        .collect();
    Some(match value {
        None => Err(format!(
            "{FLAG} needs a status word or a perf_status.txt path"
        )),
        Some(v) if v.is_empty() => Err(format!(
            "{FLAG} needs a status word or a perf_status.txt path"
        )),
        Some(_) if !others.is_empty() => Err(format!(
            "{FLAG} takes no other argument (got {})",
            others.join(" ")
        )),
        Some(v) => Ok(v),
    })
}

/// `--exit-for-status`: the exit code a decision with this status word (or the word in this
/// file) has.
fn exit_for_status(status: &str) -> Exit {
    const WORDS: [&str; 4] = ["passed", "failed", "invalid", "error"];
    let word = if WORDS.contains(&status.trim()) {
        Ok(status.trim().to_string())
    } else {
        std::fs::read_to_string(status).map(|w| w.trim().to_string())
    };
    let exit = match word.as_deref() {
        Ok("passed") => Exit::Done,
        Ok("failed") => Exit::Rejected,
        Ok("invalid") => Exit::Invalid,
        _ => Exit::Dependency,
    };
    match word {
        Ok(w) => println!("perf-status: {w} (exit {})", exit.code()),
        Err(e) => eprintln!("perf-decision: error: cannot read {status}: {e}"),
    }
    exit
}

/// Runs the step and maps its outcome to the documented exit code.
async fn run(cli: Cli, effective: serde_json::Value) -> Exit {
    if cli.resolve_candidate {
        return resolve(&cli).await;
    }
    let fail_on_reject = cli.fail_on_reject;
    // before anything else: from here on, an exit that skips the error path (a panic, SIGKILL)
    // leaves `error`, never an older decision
    let outputs = match decide::claim_outputs(&cli.output_dir) {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    let config = match DecideConfig::try_from(cli) {
        Ok(c) => c,
        Err(e) => {
            outputs.abandon(decide::STATUS_ERROR);
            record_config(&outputs, &effective);
            eprintln!("perf-decision: error: {}", scrub(&format!("{e:#}")));
            return Exit::BadInput;
        }
    };
    let output_dir = config.output_dir.clone();
    let cancel = signals::cancel_on_signal(move || {
        decide::mark_killed(&output_dir);
        std::process::exit(Exit::Aborted.code().into())
    });
    let decided = decide::run(&config, &cancel).await;
    record_config(&outputs, &effective);
    match decided {
        Ok(doc) => {
            print_summary(&doc, &config.output_dir);
            match doc.decision {
                Verdict::Invalid => Exit::Invalid,
                Verdict::Failed if fail_on_reject => Exit::Rejected,
                _ => Exit::Done,
            }
        }
        Err(e) => fail(&e),
    }
}

/// Writes `config.json`, what was asked (no secret), beside the decision or the error: after
/// the step, whose claim removes an earlier run's copy. An extra: a warning when not written.
fn record_config(outputs: &perf_gate::step::StepOutputs, effective: &serde_json::Value) {
    if let Err(e) = outputs.write_json(config_file::CONFIG_RECORD_FILE, effective) {
        tracing::warn!("config.json was not written: {}", error_line(&e));
    }
}

/// `--resolve-candidate`: the version, resolved once and written for the next steps (no
/// decision file is touched).
async fn resolve(cli: &Cli) -> Exit {
    let mlflow = match cli.mlflow_mode() {
        Ok(MlflowMode::Record(c) | MlflowMode::DryRun(c)) => c,
        Ok(MlflowMode::Off) => {
            eprintln!(
                "perf-decision: error: --resolve-candidate needs MLflow (MLFLOW_TRACKING_URI)"
            );
            return Exit::BadInput;
        }
        Err(e) => {
            eprintln!("perf-decision: error: {}", scrub(&format!("{e:#}")));
            return Exit::BadInput;
        }
    };
    let cancel = signals::cancel_on_signal(|| std::process::exit(Exit::Aborted.code().into()));
    let candidate = cli.candidate_ref();
    match decide::resolve_candidate(&mlflow, &candidate, &cli.output_dir, &cancel).await {
        Ok(v) => {
            println!(
                "candidate: {} version {} ({})",
                candidate.model_name,
                v.version,
                cli.output_dir
                    .join(decide::CANDIDATE_VERSION_FILE)
                    .display()
            );
            Exit::Done
        }
        Err(e) => fail(&e),
    }
}

/// `perf-decision override`: sets the decision, prints one line saying what moved (no
/// decision file is touched).
async fn run_override(args: OverrideArgs) -> Exit {
    let config = match OverrideConfig::try_from(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("perf-decision: error: {}", scrub(&format!("{e:#}")));
            return Exit::BadInput;
        }
    };
    let cancel = signals::cancel_on_signal(|| std::process::exit(Exit::Aborted.code().into()));
    match decide::override_decision(&config, &cancel).await {
        Ok(outcome) => {
            println!("{}", outcome.summary());
            Exit::Done
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &(impl StepFailure + 'static)) -> Exit {
    let mut line = error_line(e);
    // an untrusted MLflow certificate: say which flags fix it
    if let Some(hint) = transport::certificate_hint::<MlflowError>(e, &transport::MLFLOW) {
        line = format!("{line} ({hint})");
    }
    eprintln!("perf-decision: error: {}", scrub(&line));
    e.exit()
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
    for r in &doc.invalid_reasons {
        println!("  [INVALID] {r}");
    }
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
        output_dir.join(decide::DECISION_FILE).display(),
        output_dir.join(decide::STATUS_FILE).display()
    );
}
