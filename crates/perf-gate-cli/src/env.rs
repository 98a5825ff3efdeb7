//! Env-var fallbacks as Kubernetes and Argo pass them: a variable set to an empty string counts
//! as unset.
//!
//! Manifests routinely pass optional settings as empty strings (`PROMETHEUS_URL: ""`); clap
//! would read those as an empty value and reject it. Here an empty env var falls through to
//! the default, exactly as if it were absent.
//!
//! clap's own messages are printed through [`print_error`]: a refused command line can echo a
//! value (`unexpected argument 'http://user:PW@host'`), and `--help` shows env values, so both
//! are scrubbed of secrets and URL credentials first.

/// Drops the env fallback of every argument (of the command and its subcommands) whose env var
/// is set to an empty string.
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
    let subcommands: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in subcommands {
        cmd = cmd.mut_subcommand(name, empty_env_as_unset);
    }
    cmd
}

/// Parses `T` from the process arguments with [`empty_env_as_unset`]. A refused command line
/// (or `--help`, `--version`) comes back as clap's error, to print with [`print_error`] or exit
/// with [`exit_with`]. The values of secret arguments are registered with the scrubber first
/// ([`register_secret_args`]).
pub fn try_parse<T: clap::Parser>() -> Result<T, clap::Error> {
    let cmd = T::command();
    register_secret_args(&cmd, std::env::args_os());
    let matches = empty_env_as_unset(cmd).try_get_matches()?;
    T::from_arg_matches(&matches)
}

/// Registers with [`perf_gate::secrets`] the values given to secret arguments (those whose env
/// values are hidden: API key, token, password; a subcommand's too), from the command line (`--flag V`,
/// `--flag=V`) and from their env vars, before clap parses (and may echo) them.
pub fn register_secret_args(
    cmd: &clap::Command,
    args: impl IntoIterator<Item = std::ffi::OsString>,
) {
    let secret_args: Vec<&clap::Arg> = cmd
        .get_arguments()
        .chain(cmd.get_subcommands().flat_map(|s| s.get_arguments()))
        .filter(|a| a.is_hide_env_values_set())
        .collect();
    for a in &secret_args {
        if let Some(v) = a.get_env().and_then(std::env::var_os) {
            perf_gate::secrets::register(&v.to_string_lossy());
        }
    }
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    for (i, arg) in args.iter().enumerate() {
        for a in &secret_args {
            let Some(long) = a.get_long() else { continue };
            let flag = format!("--{long}");
            if *arg == flag {
                if let Some(v) = args.get(i + 1) {
                    perf_gate::secrets::register(v);
                }
            } else if let Some(v) = arg.strip_prefix(&format!("{flag}=")) {
                perf_gate::secrets::register(v);
            }
        }
    }
}

/// clap's message (an error, `--help` or `--version`) as it would print it, without colours,
/// with every known secret scrubbed and every URL's userinfo and query redacted: a refused
/// command line may echo a value, and `--help` shows env values.
pub fn error_text(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let text = perf_gate::urls::redact_urls_in(&text);
    perf_gate::secrets::scrub(&text).into_owned()
}

/// Prints clap's message ([`error_text`]) where clap would: stdout for `--help` and
/// `--version`, stderr otherwise.
pub fn print_error(e: &clap::Error) {
    use std::io::Write;
    let text = error_text(e);
    // a closed pipe (`--help | head`) is not worth a panic
    let _ = if e.use_stderr() {
        std::io::stderr().write_all(text.as_bytes())
    } else {
        std::io::stdout().write_all(text.as_bytes())
    };
}

/// [`print_error`], then exits with clap's code (2 for a refused command line, 0 for `--help`).
pub fn exit_with(e: clap::Error) -> ! {
    print_error(&e);
    std::process::exit(e.exit_code())
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Demo {
        #[arg(long, env = "PERF_GATE_CLI_DEMO_KEY", hide_env_values = true)]
        api_key: Option<String>,
        #[arg(long)]
        url: Option<String>,
    }

    #[test]
    fn a_refused_command_line_echoes_no_secret_and_no_url_credential() {
        use clap::CommandFactory;
        let args = [
            "demo",
            "--api-key",
            "sk-Demo-Key-1",
            "--url=x",
            "http://user:Url-Pw-1@h:1/?token=Tok-1",
            "sk-Demo-Key-1",
        ];
        register_secret_args(&Demo::command(), args.iter().map(Into::into));
        let e = Demo::try_parse_from(args).unwrap_err();
        let raw = e.render().to_string();
        assert!(raw.contains("Url-Pw-1"), "clap echoes it: {raw}");
        let text = error_text(&e);
        for s in ["sk-Demo-Key-1", "Url-Pw-1", "Tok-1"] {
            assert!(!text.contains(s), "{s} in {text}");
        }
        assert!(text.contains("http://h:1?<redacted>"), "{text}");
    }
}
