//! Command-line helpers shared by the binaries.

/// Parses `T` from the process arguments, treating an env var that is set but empty as unset.
///
/// Kubernetes manifests and Argo templates routinely pass optional settings as empty strings
/// (`PROMETHEUS_URL: ""`); clap would read those as an empty value and reject it. Here an empty
/// env var falls through to the default, exactly as if it were absent. On a parse error this
/// prints clap's message and exits with code 2, as `Parser::parse` does.
pub fn parse_with_empty_env_as_unset<T: clap::Parser>() -> T {
    let cmd = empty_env_as_unset(T::command());
    let matches = cmd.get_matches();
    T::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

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
