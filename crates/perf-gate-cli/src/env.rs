//! Env-var fallbacks as Kubernetes and Argo pass them: a variable set to an empty string counts
//! as unset.
//!
//! Manifests routinely pass optional settings as empty strings (`PROMETHEUS_URL: ""`); clap
//! would read those as an empty value and reject it. Here an empty env var falls through to
//! the default, exactly as if it were absent.

/// Drops the env fallback of every argument whose env var is set to an empty string.
pub fn empty_env_as_unset(mut cmd: clap::Command) -> clap::Command {
    let empty: Vec<clap::Id> = cmd
        .get_arguments()
        .filter(|a| {
            a.get_env()
                .and_then(std::env::var_os)
                .is_some_and(|v| v.is_empty())
        })
        .map(|a| a.get_id().clone())
        .collect();
    for id in empty {
        cmd = cmd.mut_arg(id, |a| a.env(None::<&str>));
    }
    cmd
}

/// Parses `T` from the process arguments with [`empty_env_as_unset`]. A refused command line
/// (or `--help`, `--version`) comes back as clap's error, to print and exit with.
pub fn try_parse<T: clap::Parser>() -> Result<T, clap::Error> {
    let matches = empty_env_as_unset(T::command()).try_get_matches()?;
    T::from_arg_matches(&matches)
}

/// Whether clap's error is `--help` / `--version` output rather than a refused command line.
pub fn is_help_or_version(e: &clap::Error) -> bool {
    use clap::error::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    )
}
