//! `perf-decision override`: its flags, converted once into the library's
//! [`OverrideConfig`] (`TryFrom`).

use anyhow::bail;
use clap::{Args, ValueEnum};
use perf_gate::decide::{DEFAULT_EXPERIMENT, DEFAULT_LOCK_TIMEOUT, OverrideConfig};
use perf_gate::decision::Verdict;
use perf_gate_cli::logging::LogFormat;
use perf_gate_cli::seconds::{Seconds, positive_seconds};

use super::MlflowArgs;

pub(super) const LONG_ABOUT: &str = "Set a version's decision by hand: the platform team's \
escape hatch when the gate is wrong (a noisy node, a known and accepted regression). Moves the \
perf-passed / perf-failed alias as a decision would, and records who, why and when: an override \
run in the experiment and tags on the version. Never silent: the next decisions for the model \
log a warning while the alias stands by an override.";

pub(super) const AFTER_HELP: &str = concat!(
    "Recorded (under the model's lease, after repairing what earlier runs left):\n",
    "  run      in the experiment, FINISHED: params model_name, candidate_version; tags\n",
    "           perf_override=true, perf_decision, perf_override_reason, perf_override_actor,\n",
    "           perf_override_at (RFC 3339), perf_override_previous (the version's decision before)\n",
    "  version  tags perf_decision, perf_run_id (the override run), perf_override=true,\n",
    "           perf_override_run_id, perf_override_reason, perf_override_actor, perf_override_at\n",
    "  aliases  the other alias deleted from the model, then this one set on the version\n",
    "An override measures nothing: its run is never a baseline for a later decision.\n\n",
    "Example:\n",
    "  perf-decision override --model-name llama-lora --version 7 --decision passed \\\n",
    "    --reason 'P95 over budget on a node since drained (INC-1234)'\n\n",
    "Exit codes: 0 recorded; 2 bad input (an empty --reason); 3 MLflow failed or the model or\n",
    "version is unknown; 4 aborted by a signal.\n",
);

/// `--decision` values.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum DecisionArg {
    /// The version passes: it gets perf-passed, perf-failed is deleted.
    Passed,
    /// The version fails: it gets perf-failed, perf-passed is deleted.
    Failed,
}

/// `perf-decision override` flags.
#[derive(Debug, Args)]
pub struct OverrideArgs {
    /// Registered model name in MLflow.
    #[arg(long, env = "MODEL_NAME")]
    pub model_name: String,

    /// The model version whose decision is set.
    #[arg(long, env = "CANDIDATE_VERSION", value_name = "N")]
    pub version: String,

    /// The decision the version gets.
    #[arg(long, env = "PERF_OVERRIDE_DECISION", value_enum)]
    pub decision: DecisionArg,

    /// Why (required, not empty; recorded on the run and the version, shown in later
    /// decisions' warnings). One sentence; link to the incident or ticket.
    #[arg(long, env = "PERF_OVERRIDE_REASON", value_name = "TEXT")]
    pub reason: String,

    /// Who overrides; default: $PERF_GATE_ACTOR, else $USER, else `unknown`.
    #[arg(long, env = "PERF_GATE_ACTOR", value_name = "NAME")]
    pub actor: Option<String>,

    /// MLflow experiment holding the performance runs (the override run is created there).
    #[arg(
        long,
        env = "PERF_EXPERIMENT_NAME",
        default_value = DEFAULT_EXPERIMENT
    )]
    pub experiment_name: String,

    /// How long to wait while a decision for the same model holds the model's lease.
    #[arg(long, env = "PERF_LOCK_TIMEOUT", default_value_t = Seconds(DEFAULT_LOCK_TIMEOUT), value_parser = positive_seconds)]
    pub lock_timeout: Seconds,

    /// MLflow server and credentials.
    #[command(flatten)]
    pub mlflow: MlflowArgs,

    /// Log format on stderr.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The actor: `--actor` / `PERF_GATE_ACTOR`, else `user` (`$USER`), else `unknown`; blank
/// values count as unset.
fn actor(given: Option<String>, user: Option<String>) -> String {
    given
        .filter(|a| !a.trim().is_empty())
        .or(user.filter(|u| !u.trim().is_empty()))
        .map(|a| a.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

impl TryFrom<OverrideArgs> for OverrideConfig {
    type Error = anyhow::Error;

    /// Validates the flags (a reason, a version number, MLflow set) and builds the config.
    fn try_from(args: OverrideArgs) -> anyhow::Result<Self> {
        let Some(mlflow) = args.mlflow.config()? else {
            bail!(
                "MLFLOW_TRACKING_URI is not set: an override is recorded in MLflow (set it or --tracking-uri)"
            );
        };
        let cfg = OverrideConfig {
            mlflow,
            model_name: args.model_name,
            version: args.version.trim().to_string(),
            decision: match args.decision {
                DecisionArg::Passed => Verdict::Passed,
                DecisionArg::Failed => Verdict::Failed,
            },
            reason: args.reason,
            actor: actor(args.actor, std::env::var("USER").ok()),
            experiment_name: args.experiment_name,
            lock_wait: args.lock_timeout.into(),
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Cli, Command};
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> OverrideArgs {
        let mut all = vec!["perf-decision", "override"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all).unwrap().command {
            Some(Command::Override(o)) => o,
            None => panic!("no subcommand"),
        }
    }

    const BASE: [&str; 4] = [
        "--model-name=m",
        "--version=7",
        "--decision=passed",
        "--tracking-uri=http://127.0.0.1:5000",
    ];

    #[test]
    fn an_override_converts_into_its_config() {
        let mut v = BASE.to_vec();
        v.extend(["--reason=noisy node", "--actor=alice"]);
        let cfg = OverrideConfig::try_from(parse(&v)).unwrap();
        assert_eq!(
            (cfg.model_name.as_str(), cfg.version.as_str(), cfg.decision),
            ("m", "7", Verdict::Passed)
        );
        assert_eq!(
            (cfg.reason.as_str(), cfg.actor.as_str()),
            ("noisy node", "alice")
        );
        assert_eq!(cfg.experiment_name, DEFAULT_EXPERIMENT);
    }

    #[test]
    fn the_actor_falls_back_to_user_then_unknown() {
        assert_eq!(actor(Some("ci-bot".into()), Some("bob".into())), "ci-bot");
        assert_eq!(actor(Some(" ".into()), Some("bob".into())), "bob");
        assert_eq!(actor(None, None), "unknown");
    }

    #[test]
    fn a_blank_reason_and_a_missing_server_are_refused() {
        let mut v = BASE.to_vec();
        v.push("--reason= ");
        let e = OverrideConfig::try_from(parse(&v)).unwrap_err().to_string();
        assert!(e.starts_with("--reason must not be empty"), "{e}");
        let v = [
            "--model-name=m",
            "--version=7",
            "--decision=failed",
            "--reason=x",
        ];
        let e = OverrideConfig::try_from(parse(&v)).unwrap_err().to_string();
        assert!(e.starts_with("MLFLOW_TRACKING_URI is not set"), "{e}");
    }

    #[test]
    fn only_passed_or_failed_and_no_step_flags() {
        let mut v = BASE.to_vec();
        v.push("--reason=x");
        v[2] = "--decision=invalid";
        let all = |v: &[&str]| {
            let mut all = vec!["perf-decision", "override"];
            all.extend_from_slice(v);
            Cli::try_parse_from(all)
        };
        assert!(all(&v).is_err());
        let mut v = BASE.to_vec();
        v.extend(["--reason=x", "--load-test-results=r.json"]);
        assert!(all(&v).is_err(), "the step's flags are not the override's");
    }
}
